//! Diesel's view of the tables created by `migrations/`.

diesel::table! {
    admins (id) {
        id -> BigInt,
        email -> Text,
        key_digest -> Bytea,
        is_active -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    instances (id) {
        id -> BigInt,
        name -> Text,
        owner_id -> BigInt,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    admin_roles (instance_id, admin_id) {
        instance_id -> BigInt,
        admin_id -> BigInt,
        role -> Text,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        instance_id -> BigInt,
        key_digest -> Bytea,
        ignore_acl -> Bool,
        allow_user_create -> Bool,
        allow_anonymous_read -> Bool,
        allow_group_create -> Bool,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        instance_id -> BigInt,
        username -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        instance_id -> BigInt,
        label -> Text,
        name -> Nullable<Text>,
        description -> Text,
        deleted_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    memberships (instance_id, group_id, user_id) {
        instance_id -> BigInt,
        group_id -> BigInt,
        user_id -> BigInt,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(instances -> admins (owner_id));
diesel::joinable!(admin_roles -> instances (instance_id));
diesel::joinable!(admin_roles -> admins (admin_id));
diesel::joinable!(api_keys -> instances (instance_id));
diesel::joinable!(users -> instances (instance_id));
diesel::joinable!(groups -> instances (instance_id));

diesel::allow_tables_to_appear_in_same_query!(
    admins,
    instances,
    admin_roles,
    api_keys,
    users,
    groups,
    memberships,
);

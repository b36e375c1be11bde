//! Fixed SQL statements with their binds, prepared once per connection.
//!
//! diesel caches a prepared statement per connection only for a query with a static query id;
//! `sql_query` has none, so it would be parsed and planned on every call. [`fixed_statement!`]
//! declares a statement type whose SQL text (with `$1..$n` written in it, each once, in order)
//! never changes and whose type is its cache key: after a connection's first use, a call only
//! binds and executes.

/// The SQL text cut at its placeholders `$1..$n`: `n + 1` pieces, each placeholder checked to
/// be the next number. diesel writes each bind's placeholder itself, between the pieces.
pub(crate) fn pieces(sql: &'static str, binds: usize) -> Vec<&'static str> {
    let mut pieces = Vec::with_capacity(binds + 1);
    let mut rest = sql;
    for n in 1..=binds {
        let placeholder = format!("${n}");
        let at = rest
            .match_indices(&placeholder)
            .map(|(at, _)| at)
            .find(|at| !rest[at + placeholder.len()..].starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("statement lacks {placeholder}: {sql}"));
        pieces.push(&rest[..at]);
        rest = &rest[at + placeholder.len()..];
    }
    assert!(
        !rest.contains('$'),
        "statement has more placeholders than binds: {sql}"
    );
    pieces.push(rest);
    pieces
}

/// Declares a fixed statement: a struct of its binds, in `$n` order, and the row type.
///
/// ```ignore
/// fixed_statement! {
///     /// What it does.
///     Name<'a> { first: &'a str => Text, second: i64 => BigInt } -> (Bool, Text) = "SELECT ..."
/// }
/// ```
macro_rules! fixed_statement {
    (
        $(#[$doc:meta])*
        $name:ident<$lt:lifetime> { $($field:ident : $ty:ty => $sql_ty:ty),* $(,)? }
        -> $row:ty = $sql:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name<$lt> {
            $(pub(crate) $field: $ty,)*
        }

        impl $name<'_> {
            /// The statement's SQL text, as sent.
            pub(crate) const SQL: &'static str = $sql;
        }

        impl diesel::query_builder::QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::query_builder::Query for $name<'_> {
            type SqlType = $row;
        }

        impl diesel::RunQueryDsl<diesel::PgConnection> for $name<'_> {}

        impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for $name<'_> {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
            ) -> diesel::QueryResult<()> {
                static PIECES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
                    $crate::statement::pieces($name::SQL, [$(stringify!($field)),*].len())
                });
                let mut pieces = PIECES.iter();
                $(
                    out.push_sql(pieces.next().copied().unwrap_or_default());
                    out.push_bind_param::<$sql_ty, _>(&self.$field)?;
                )*
                out.push_sql(pieces.next().copied().unwrap_or_default());
                Ok(())
            }
        }
    };
}

pub(crate) use fixed_statement;

/// The principal of a key on an instance, as a subquery: `label` and `admin_id` (null for an
/// API key), from the instance row `$inst` (`id`, `owner_id`) and the SQL expressions of the
/// account key's and the API key's digests.
macro_rules! principal_sql {
    ($inst:literal, $account_key:literal, $api_key:literal) => {
        concat!(
            "SELECT CASE WHEN a.id = ",
            $inst,
            ".owner_id THEN 'owner' ELSE COALESCE(r.role, 'none') END AS label, \
                    a.id AS admin_id \
             FROM admins a LEFT JOIN admin_roles r ON r.instance_id = ",
            $inst,
            ".id AND r.admin_id = a.id \
             WHERE a.is_active AND a.key_digest = ",
            $account_key,
            " \
             UNION ALL \
             SELECT CASE WHEN k.ignore_acl THEN 'api_key_ignore_acl' ELSE 'api_key' END, NULL \
             FROM api_keys k \
             WHERE k.instance_id = ",
            $inst,
            ".id AND k.revoked_at IS NULL AND k.key_digest = ",
            $api_key,
            " \
             LIMIT 1"
        )
    };
}

pub(crate) use principal_sql;

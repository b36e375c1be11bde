DROP TABLE memberships;
DROP TABLE groups;
DROP TABLE users;
DROP TABLE api_keys;
DROP TABLE admin_roles;
DROP TABLE instances;
DROP TABLE admins;

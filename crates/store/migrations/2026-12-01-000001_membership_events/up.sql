-- The audit trail: one row per membership removed, written by the removal statement itself.
-- Append-only. No foreign keys: events outlive the rows they name (a deleted user, group or
-- admin keeps its history), and a foreign key check would lock the instance's row on every
-- removal. Rows leave only through retention (groups-server --audit-retention-days).
CREATE TABLE membership_events (
    instance_id    BIGINT      NOT NULL,
    -- Global and increasing: newest first is id order, across the whole service.
    id             BIGINT      GENERATED ALWAYS AS IDENTITY,
    action         TEXT        NOT NULL DEFAULT 'membership.removed'
                               CHECK (action IN ('membership.removed')),
    group_id       BIGINT      NOT NULL,
    user_id        BIGINT      NOT NULL,
    actor_admin_id BIGINT      NOT NULL,
    actor_role     TEXT        NOT NULL CHECK (actor_role IN ('owner', 'full', 'write')),
    request_id     TEXT        NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    at             TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- The writing transaction: a listing's later pages read only what its first page's
    -- snapshot could see, so no event is skipped or repeated across pages.
    xact           XID8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (instance_id, id)
);
-- Per instance, newest first: the primary key. Per group and per user, newest first:
CREATE INDEX membership_events_group_idx ON membership_events (instance_id, group_id, id);
CREATE INDEX membership_events_user_idx ON membership_events (instance_id, user_id, id);
-- Retention deletes by age across instances; rows arrive in time order, so a BRIN index finds
-- the old ones for almost nothing on each insert.
CREATE INDEX membership_events_at_idx ON membership_events USING brin (at);

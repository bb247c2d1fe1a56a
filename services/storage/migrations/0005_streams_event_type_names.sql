-- event_keys.event_type listed the two streams of contract v1 in a CHECK, so every new stream
-- had to replace that constraint with a longer list, and two streams added side by side would
-- each have listed the other out. The names are the streams' own (services/streams/, whose
-- registry refuses a name claimed twice); the database now checks only their form, and a new
-- stream's migration creates just its own tables.
--
-- NOT VALID: every existing row passed the stricter list, so the table (keys are kept for
-- ever, millions of rows) is not scanned under this migration's lock; new rows are checked.
ALTER TABLE event_keys DROP CONSTRAINT event_keys_event_type_check;
ALTER TABLE event_keys ADD CONSTRAINT event_keys_event_type_check
    CHECK (event_type ~ '^[a-z][a-z0-9_]{0,31}$') NOT VALID;

-- alerts/: back-off between delivery runs, and which transport (smtp | outbox) delivered.
ALTER TABLE alerts ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE alerts ADD COLUMN delivered_via text;

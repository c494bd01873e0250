-- alerts/web: server-side sign-in sessions and the sign-in attempts that throttle guessing.

-- One row per sign-in. The browser's cookie carries a random token; only its sha256 is kept
-- here, so reading this table does not hand out live sessions. A session is valid while
-- ended_at is null and expires_at is in the future; logout, a password change and disabling
-- the reviewer set ended_at (with the reason), so a copied cookie stops working at once.
CREATE TABLE web_sessions (
    token_sha256 char(64) PRIMARY KEY,
    reviewer_id  bigint NOT NULL REFERENCES reviewers (id) ON DELETE CASCADE,
    client       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    end_reason   text CHECK (end_reason IN ('logout', 'password_changed', 'disabled'))
);
CREATE INDEX web_sessions_live_idx ON web_sessions (reviewer_id) WHERE ended_at IS NULL;

-- Every password check of the sign-in form. `device` is the nonce of a valid device cookie
-- for that e-mail (a browser that signed in to the account before), else null; failures are
-- counted per account and per client address among clients without one, and per device.
CREATE TABLE login_attempts (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    email    text NOT NULL,
    address  text NOT NULL,
    device   text,
    outcome  text NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'ok', 'failed'))
);
CREATE INDEX login_attempts_email_idx ON login_attempts (email, at) WHERE outcome <> 'ok';
CREATE INDEX login_attempts_address_idx ON login_attempts (address, at) WHERE outcome <> 'ok';
CREATE INDEX login_attempts_device_idx ON login_attempts (device, at)
    WHERE device IS NOT NULL AND outcome <> 'ok';
CREATE INDEX login_attempts_at_idx ON login_attempts (at);

-- API tokens expire and can be revoked; each has an id to name it by (never its hash).
ALTER TABLE api_tokens
    ADD COLUMN id          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN expires_at  timestamptz NOT NULL DEFAULT now() + interval '90 days',
    ADD COLUMN revoked_at  timestamptz;

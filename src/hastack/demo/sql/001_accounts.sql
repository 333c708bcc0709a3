-- Users, sites (tenants), who may access which site, and API tokens (stored hashed).
CREATE TABLE app_users (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_sites (
    user_id     int NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    site_id     int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, site_id)
);

CREATE TABLE api_tokens (
    token_hash  text PRIMARY KEY,
    user_id     int NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

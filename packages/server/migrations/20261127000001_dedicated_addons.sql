-- migrate:up
-- Dedicated Postgres add-ons: a server of their own under MINIPAAS_HOME/addons/<database_name>/,
-- listening on 127.0.0.1 at `port` (NULL for add-ons on the platform's server).
ALTER TABLE addons ADD COLUMN port integer;
CREATE UNIQUE INDEX addons_port_key ON addons (port) WHERE port IS NOT NULL;
ALTER TABLE addons ADD CONSTRAINT addons_dedicated_port CHECK (dedicated = (port IS NOT NULL));

-- migrate:down
ALTER TABLE addons DROP COLUMN port;

-- Local development only (docker-compose.yml): the least-privilege role
-- capture runs as, and the publication created by the table's owner, exactly
-- as docs/operations.md ("The replication role") recommends for production.
-- The EventCore schema itself is applied before this file (10-eventcore.sql).

CREATE ROLE tidemark_capture WITH LOGIN REPLICATION PASSWORD 'tidemark-dev';
GRANT USAGE ON SCHEMA public TO tidemark_capture;
GRANT SELECT ON public.eventcore_events TO tidemark_capture;

-- A publication's tables must be owned by its creator, so the owner
-- (here: postgres) creates it and capture only reads through it.
CREATE PUBLICATION tidemark FOR TABLE public.eventcore_events;

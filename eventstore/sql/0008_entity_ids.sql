-- Entity ids that are canonical UUIDs are stored as their 16 bytes from now on (see
-- eventstore.entity_ids); rows written before keep their text. The event_log view shows both
-- as text. Owned by eventstore.names (event_log).

DROP VIEW event_log;

CREATE VIEW event_log AS
SELECT e.position, lower(hex(e.event_id)) AS event_id, s.name AS stream, e.version, t.name AS type,
       e.schema_version, n.name AS entity,
       CASE WHEN typeof(e.entity_id) = 'blob'
            THEN substr(lower(hex(e.entity_id)), 1, 8) || '-' || substr(lower(hex(e.entity_id)), 9, 4) || '-'
                 || substr(lower(hex(e.entity_id)), 13, 4) || '-' || substr(lower(hex(e.entity_id)), 17, 4) || '-'
                 || substr(lower(hex(e.entity_id)), 21)
            ELSE e.entity_id END AS entity_id,
       o.name AS op, c.client_id, a.name AS actor, e.occurred_at, e.recorded_at, e.causation_id, e.correlation_id
FROM events e
JOIN streams s ON s.stream_no = e.stream_no
JOIN names t ON t.name_no = e.type_no
JOIN names n ON n.name_no = e.entity_no
JOIN names o ON o.name_no = e.op_no
JOIN names a ON a.name_no = e.actor_no
JOIN clients c ON c.client_no = e.client_no;

-- leader_session: the leadership connection waits and holds without any timeout, and asks the
-- server to notice a vanished peer in seconds (TCP keepalives, user timeout, client checks while
-- waiting); a setting this server lacks (older versions) is skipped. Returns how many were set.
SELECT count(pg_catalog.set_config(s.name, v.value, false))
FROM (VALUES ('statement_timeout', '0'),
             ('lock_timeout', '0'),
             ('idle_in_transaction_session_timeout', '0'),
             ('idle_session_timeout', '0'),
             ('tcp_keepalives_idle', '5'),
             ('tcp_keepalives_interval', '2'),
             ('tcp_keepalives_count', '3'),
             ('tcp_user_timeout', '10000'),
             ('client_connection_check_interval', '5000')) AS v (name, value)
JOIN pg_catalog.pg_settings s ON s.name = v.name

DROP TABLE outbox;
DROP TABLE link_tokens;

-- pgbench reference for the apply stage: seed flow 7's transaction, one submission per
-- transaction (lock the user, add the points, write the history, mark the token used).
\set uid random(1, 1000)
\set delta random(1, 50)
BEGIN;
SELECT current_score FROM users WHERE id = :uid FOR UPDATE;
UPDATE users SET current_score = current_score + :delta, last_history_id = nextval('score_history_id_seq'),
  score_reached_at = clock_timestamp() WHERE id = :uid;
INSERT INTO score_history (user_id, action_id, action_type, score_change, new_score, submission_id)
  VALUES (:uid, md5(random()::text), 'tap', :delta, 0, md5(random()::text));
INSERT INTO action_tokens (token, used, user_id, action_type, submission_id)
  VALUES (md5(random()::text || :client_id), true, :uid, 'tap', md5(random()::text));
COMMIT;

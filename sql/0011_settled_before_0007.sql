-- 0011 — final outcomes recorded before 0007 were settled at once, call by call.
--
-- 0007 added send_recipients.settled with the default false, so the recipients that were already 'done'
-- then (their credits consumed or released by the old per-call code) looked unsettled: their sends hold
-- fewer credits than they count (often none: completed), and settling them again was refused, which
-- stopped every send of the engine from completing. A send's held credits always cover its unsettled
-- final outcomes since 0007; the sends where they do not are exactly those older rows.
UPDATE send_recipients r SET settled = true
FROM sends s
WHERE r.send_id = s.id AND r.state = 'done' AND NOT r.settled
  AND s.credits_held < (SELECT count(*) FROM send_recipients x
                        WHERE x.send_id = s.id AND x.state = 'done' AND NOT x.settled);

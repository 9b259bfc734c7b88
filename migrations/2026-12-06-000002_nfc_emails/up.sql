-- Emails are compared on their NFC-normalised, Unicode-lowercased form: the same address typed
-- with a precomposed "é" or with "e" plus a combining accent is one identity. Rows written before
-- were lowercased but not NFC-normalised; this brings them to the form the application now
-- writes. Should two existing accounts become the same identity, nothing is changed and the
-- migration stops, naming them, for an operator to resolve (merge or rename one).
DO $$
DECLARE
    clash text;
BEGIN
    SELECT string_agg(emails, '; ') INTO clash
    FROM (
        SELECT string_agg(email, ', ' ORDER BY created_at) AS emails
        FROM users
        GROUP BY normalize(email_normalized, NFC)
        HAVING count(*) > 1
    ) AS clashes;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'cannot normalise emails: these accounts would share one address: %', clash
            USING HINT = 'Rename or delete one account of each group, then run authd migrate again.';
    END IF;
    UPDATE users
    SET email_normalized = normalize(email_normalized, NFC)
    WHERE email_normalized IS DISTINCT FROM normalize(email_normalized, NFC);
END
$$;

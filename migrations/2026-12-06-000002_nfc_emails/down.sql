-- NFC is a normal form: the rows stay as they are (they are still lowercase).
SELECT 1;

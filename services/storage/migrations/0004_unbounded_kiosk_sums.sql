-- A month's kiosk amount per institution is a sum of up to millions of transactions of up
-- to 999,999,999,999.99 each: numeric(18,2) could overflow, and an overflow is a data
-- error that no retry can fix. Unconstrained numeric keeps the sum exact at any size.
ALTER TABLE kiosk_monthly ALTER COLUMN amount TYPE numeric;

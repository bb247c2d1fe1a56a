-- The frozen reports of closed months (issue 10, contract Revision 2 "Closed months,
-- restatements and receipts"). Closing a month (services/storage/months.py, close_month)
-- writes, in the transaction that marks it closed, the JSON of every report of the month
-- (services/reports/catalog.py names them) as each reader sees it: org_scope '' is the admin's
-- view (every institution), any other value one institution's own view, for every
-- institution of the reference set in force at the close. The cutoff is the months row's.
-- `json`, not `jsonb`: the body is served back as it was written, keys in the report's order.
CREATE TABLE month_snapshots (
    month     date NOT NULL REFERENCES months (month),
    report    text NOT NULL,
    org_scope text NOT NULL,
    body      json NOT NULL,
    PRIMARY KEY (month, report, org_scope)
);

GRANT SELECT ON month_snapshots TO grafana_reader;
GRANT SELECT ON months TO grafana_reader;

-- The transparency log commits to every business event an EPCIS export carries, under the
-- eventID its writer answered with (payload field epcis_event_id): containment changes
-- (pack, unpack, rework) and lot holds are logged too, not only status changes.
DROP TRIGGER domain_events_tlog ON domain_events;
CREATE TRIGGER domain_events_tlog
    AFTER INSERT ON domain_events FOR EACH ROW
    WHEN (NEW.kind IN ('codes.issued', 'codes.commissioned', 'codes.scrapped', 'codes.returned',
                       'logistics.shipped', 'logistics.received', 'logistics.decommissioned',
                       'logistics.decommission_undone', 'aggregation.replaced',
                       'aggregation.sampled', 'audit.recalled', 'keys.rotated', 'keys.revoked',
                       'aggregation.packed', 'aggregation.unpacked', 'aggregation.reworked',
                       'lot.held', 'lot.released'))
    EXECUTE FUNCTION sealmark_tlog_enqueue();

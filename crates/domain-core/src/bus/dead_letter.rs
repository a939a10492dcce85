//! The dead-letter record: the original bytes plus where they came from and
//! why they failed, so an operator can inspect and replay them.

use crate::Error;
use crate::bus::Delivery;
use crate::codec::Record;

pub const ERROR_HEADER: &str = "dlq_error";
pub const TOPIC_HEADER: &str = "dlq_topic";
pub const PARTITION_HEADER: &str = "dlq_partition";
pub const OFFSET_HEADER: &str = "dlq_offset";

/// Builds the record sent to `<topic>.dlq` for a failed delivery.
pub fn record_for(delivery: &Delivery, error: &Error) -> Record {
    let mut record = delivery.record.clone();
    record.headers.retain(|(n, _)| !n.starts_with("dlq_"));
    record.headers.extend([
        (ERROR_HEADER.to_owned(), error.to_string().into_bytes()),
        (TOPIC_HEADER.to_owned(), delivery.topic.clone().into_bytes()),
        (PARTITION_HEADER.to_owned(), delivery.partition.to_string().into_bytes()),
        (OFFSET_HEADER.to_owned(), delivery.offset.to_string().into_bytes()),
    ]);
    record
}

//! What the registry's integration tests share: the orders context's real
//! announcement document, customer events as orders writes them, and
//! events no contract can accept.

#![allow(dead_code)]

use std::path::PathBuf;

use domain_core::bus::Record;
use domain_core::{Envelope, EventType};
use serde_json::{Value, json};

/// The announcement the orders context publishes (read from its file, as
/// a test of the registry against what really arrives).
pub fn customer_documents() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../orders/contracts/customer_data_v1.yaml");
    std::fs::read_to_string(path).expect("the orders context's customer product document")
}

pub fn announcement(documents: &str) -> Envelope {
    Envelope::raw(
        "orders",
        EventType::new("orders", "DataProductAnnounced", 1).expect("type"),
        "customer_data_v1",
        1,
        json!({ "product_id": "customer_data_v1", "format": "yaml", "documents": documents }),
    )
}

pub fn customer(i: usize) -> Value {
    let names = ["张三", "李四", "王五"];
    json!({
        "customer_id": format!("cust_{:03}", i + 1),
        "name": names.get(i).copied().map_or_else(|| format!("customer {i}"), str::to_owned),
        "email": format!("c{i}@example.com"),
        "registration_date": "2023-01-01",
        "status": if i == 2 { "inactive" } else { "active" },
        "segment": if i == 0 { "premium" } else { "standard" },
    })
}

pub fn registered(data: Value) -> Envelope {
    let id = data["customer_id"].as_str().map_or_else(|| "unknown".to_owned(), str::to_owned);
    Envelope::raw("orders", EventType::new("orders", "CustomerRegistered", 1).expect("type"), id, 1, data)
}

/// An invalid customer of kind `i % 3`: no email, a status outside the
/// allowed values, a registration date that is not a date.
pub fn invalid_customer(i: usize) -> Envelope {
    let mut data = customer(i);
    match i % 3 {
        0 => {
            data.as_object_mut().expect("object").remove("email");
        }
        1 => data["status"] = json!("sleeping"),
        _ => data["registration_date"] = json!("yesterday"),
    }
    registered(data)
}

/// An order event on the same topic, which the customer port skips.
pub fn unrelated(i: usize) -> Envelope {
    Envelope::raw(
        "orders",
        EventType::new("orders", "OrderShipped", 1).expect("type"),
        format!("order_{i}"),
        1,
        json!({ "shipping_address": "北京市朝阳区" }),
    )
}

/// A record claiming to be a customer event whose value is not JSON.
pub fn garbled(i: usize) -> Record {
    let mut r = domain_core::codec::encode(&registered(customer(i))).expect("encode");
    r.value = Some(b"{not json".to_vec());
    r
}

pub fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mesh-{name}-{}", uuid::Uuid::now_v7().simple()))
}

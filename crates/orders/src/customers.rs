//! Customer master data: the customers orders serves, each an event-sourced
//! [`Customer`] in the orders store, and the data product that publishes
//! them (the seed's `CustomerDataProduct`, `customer_data_v1`).
//!
//! Every customer event carries the whole profile, so the latest event of
//! a customer is its record: what the registry materialises from
//! `orders.events` to answer `get_customer_by_id`.

use std::sync::Arc;

use chrono::NaiveDate;
use domain_core::bus::topics;
use domain_core::{Aggregate, AggregateRoot, DomainEvent, Envelope, EventType};
use event_store::{EventStore, Repository};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::order::{account_like_id, check_email};
use crate::{Error, Result};

/// Whether a customer is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerStatus {
    Active,
    Inactive,
}

/// A customer's record (the seed's `get_data` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    pub customer_id: String,
    pub name: String,
    pub email: String,
    pub registration_date: NaiveDate,
    pub status: CustomerStatus,
    pub segment: String,
}

impl CustomerProfile {
    /// Validates and trims: an account-like id, a name, an email
    /// `local@domain.tld`, a segment.
    pub fn new(
        customer_id: impl Into<String>,
        name: impl Into<String>,
        email: impl Into<String>,
        registration_date: NaiveDate,
        status: CustomerStatus,
        segment: impl Into<String>,
    ) -> std::result::Result<Self, CustomerError> {
        let customer_id = account_like_id(customer_id.into()).map_err(|(value, reason)| CustomerError::Invalid {
            field: "customer_id",
            value,
            reason,
        })?;
        let name = name.into().trim().to_owned();
        if name.is_empty() {
            return Err(CustomerError::Invalid { field: "name", value: name, reason: "must not be empty" });
        }
        let email = email.into().trim().to_owned();
        check_email(&email).map_err(|reason| CustomerError::Invalid {
            field: "email",
            value: email.clone(),
            reason,
        })?;
        let segment = segment.into().trim().to_owned();
        if segment.is_empty() {
            return Err(CustomerError::Invalid { field: "segment", value: segment, reason: "must not be empty" });
        }
        Ok(Self { customer_id, name, email, registration_date, status, segment })
    }
}

/// What a customer refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    #[error("customer {field} `{value}`: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("the customer is already registered")]
    AlreadyRegistered,
    #[error("no such customer is registered")]
    NotRegistered,
    #[error("the profile's customer_id `{given}` is not this customer's (`{this}`)")]
    WrongId { given: String, this: String },
    #[error("nothing changes")]
    NoChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerCommand {
    Register(CustomerProfile),
    /// Replaces the profile (same id).
    Update(CustomerProfile),
}

/// Each event carries the whole profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerEvent {
    CustomerRegistered(CustomerProfile),
    CustomerUpdated(CustomerProfile),
}

impl DomainEvent for CustomerEvent {
    const CONTEXT: &'static str = "orders";
}

/// A customer: nothing until registered, then its latest profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    profile: Option<CustomerProfile>,
}

impl Customer {
    pub fn profile(&self) -> Option<&CustomerProfile> {
        self.profile.as_ref()
    }
}

impl Aggregate for Customer {
    const TYPE: &'static str = "Customer";
    type Command = CustomerCommand;
    type Event = CustomerEvent;
    type Error = CustomerError;

    fn handle(&self, command: CustomerCommand) -> std::result::Result<Vec<CustomerEvent>, CustomerError> {
        match (command, &self.profile) {
            (CustomerCommand::Register(p), None) => Ok(vec![CustomerEvent::CustomerRegistered(p)]),
            (CustomerCommand::Register(_), Some(_)) => Err(CustomerError::AlreadyRegistered),
            (CustomerCommand::Update(_), None) => Err(CustomerError::NotRegistered),
            (CustomerCommand::Update(p), Some(old)) if p.customer_id != old.customer_id => {
                Err(CustomerError::WrongId { given: p.customer_id, this: old.customer_id.clone() })
            }
            (CustomerCommand::Update(p), Some(old)) if &p == old => Err(CustomerError::NoChange),
            (CustomerCommand::Update(p), Some(_)) => Ok(vec![CustomerEvent::CustomerUpdated(p)]),
        }
    }

    fn apply(&mut self, event: &CustomerEvent) {
        match event {
            CustomerEvent::CustomerRegistered(p) | CustomerEvent::CustomerUpdated(p) => self.profile = Some(p.clone()),
        }
    }
}

/// Customers in the orders store.
#[derive(Debug)]
pub struct Customers {
    repository: Repository<Customer>,
}

impl Customers {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { repository: Repository::new(store) }
    }

    /// Registers a new customer, or updates one (retrying a lost race).
    pub async fn upsert(&self, profile: CustomerProfile) -> Result<AggregateRoot<Customer>> {
        let id = profile.customer_id.clone();
        for _ in 0..2 {
            let root = self.repository.load(&id).await?;
            let command = match root.state().profile {
                None => CustomerCommand::Register(profile.clone()),
                Some(_) => CustomerCommand::Update(profile.clone()),
            };
            match self.repository.execute(&id, || command.clone(), None, 3).await? {
                Ok((root, _)) => return Ok(root),
                Err(CustomerError::NoChange) => return Ok(root),
                // Registered by someone else meanwhile: update instead.
                Err(CustomerError::AlreadyRegistered) => continue,
                Err(e) => return Err(Error::Customer(e)),
            }
        }
        Err(Error::Customer(CustomerError::AlreadyRegistered))
    }

    pub async fn get(&self, customer_id: &str) -> Result<Option<CustomerProfile>> {
        Ok(self.repository.load(customer_id).await?.state().profile.clone())
    }
}

/// The customer data product and its contract, as one YAML stream.
pub const PRODUCT_DOCUMENTS: &str = include_str!("../contracts/customer_data_v1.yaml");
/// The product's id.
pub const PRODUCT_ID: &str = "customer_data_v1";

/// Announces the customer data product (with its contract) on
/// `mesh.events`, for the registry to register.
pub fn announcement() -> domain_core::Result<Envelope> {
    let ty = EventType::new("orders", "DataProductAnnounced", 1)?;
    Ok(Envelope::raw(
        "orders",
        ty,
        PRODUCT_ID,
        1,
        json!({ "product_id": PRODUCT_ID, "format": "yaml", "documents": PRODUCT_DOCUMENTS }),
    ))
}

/// The topic announcements go to.
pub const ANNOUNCE_TOPIC: &str = topics::MESH;

/// The seed's customers (`demo_data_mesh`: 张三 is cust_001).
pub fn seed_customers() -> Vec<CustomerProfile> {
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    let rows = [
        ("cust_001", "张三", "zhangsan@example.com", date(2023, 1, 1), CustomerStatus::Active, "premium"),
        ("cust_002", "李四", "lisi@example.com", date(2023, 2, 15), CustomerStatus::Active, "standard"),
        ("cust_003", "王五", "wangwu@example.com", date(2023, 3, 20), CustomerStatus::Inactive, "standard"),
    ];
    rows.into_iter()
        .filter_map(|(id, name, email, day, status, segment)| {
            CustomerProfile::new(id, name, email, day, status, segment).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use domain_core::testkit::AggregateTest;

    use super::*;

    fn zhang() -> CustomerProfile {
        seed_customers().remove(0)
    }

    #[test]
    fn the_seed_customers_are_valid() {
        let all = seed_customers();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].name, "张三");
        assert_eq!(all[2].status, CustomerStatus::Inactive);
    }

    #[test]
    fn a_customer_registers_once_and_updates_with_its_whole_profile() {
        AggregateTest::<Customer>::given(vec![])
            .when(CustomerCommand::Register(zhang()))
            .then_expect_events(vec![CustomerEvent::CustomerRegistered(zhang())]);
        AggregateTest::<Customer>::given(vec![CustomerEvent::CustomerRegistered(zhang())])
            .when(CustomerCommand::Register(zhang()))
            .then_expect_error(|e| *e == CustomerError::AlreadyRegistered);
        let mut moved = zhang();
        moved.segment = "vip".into();
        AggregateTest::<Customer>::given(vec![CustomerEvent::CustomerRegistered(zhang())])
            .when(CustomerCommand::Update(moved.clone()))
            .then_expect_events(vec![CustomerEvent::CustomerUpdated(moved)]);
        AggregateTest::<Customer>::given(vec![CustomerEvent::CustomerRegistered(zhang())])
            .when(CustomerCommand::Update(zhang()))
            .then_expect_error(|e| *e == CustomerError::NoChange);
        AggregateTest::<Customer>::given(vec![])
            .when(CustomerCommand::Update(zhang()))
            .then_expect_error(|e| *e == CustomerError::NotRegistered);
    }

    #[test]
    fn a_bad_profile_is_refused_with_the_field() {
        let day = NaiveDate::from_ymd_opt(2023, 1, 1).expect("date");
        let err =
            CustomerProfile::new("cust_9", "A", "not-an-email", day, CustomerStatus::Active, "x").expect_err("bad");
        assert!(matches!(err, CustomerError::Invalid { field: "email", .. }), "{err}");
        let err = CustomerProfile::new("cust 9", "A", "a@b.cn", day, CustomerStatus::Active, "x").expect_err("bad");
        assert!(matches!(err, CustomerError::Invalid { field: "customer_id", .. }), "{err}");
    }

    #[test]
    fn the_wire_record_is_the_flat_profile() {
        let env = Envelope::new("cust_001", 1, &CustomerEvent::CustomerRegistered(zhang())).expect("wire");
        assert_eq!(env.event_type.to_string(), "orders.CustomerRegistered.v1");
        assert_eq!(env.data["name"], "张三");
        assert_eq!(env.data["registration_date"], "2023-01-01");
        assert_eq!(env.data["status"], "active");
    }
}

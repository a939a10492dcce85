//! The semver gate's classification, change by change.
use serde_json::json;

use super::*;
use crate::contract::tests::customer;
use crate::contract::{DataQuality, QualityType, SchemaProperty};

fn prop<'c>(c: &'c mut Contract, name: &str) -> &'c mut SchemaProperty {
    c.schema[0].properties.iter_mut().find(|p| p.name == name).expect("property exists")
}

fn options(p: &mut SchemaProperty) -> &mut LogicalTypeOptions {
    p.logical_type_options.get_or_insert_with(LogicalTypeOptions::default)
}

fn valid_values(p: &mut SchemaProperty) -> &mut Vec<Value> {
    let rule = p.quality.iter_mut().find(|q| q.is_strict(Metric::InvalidValues)).expect("enum rule");
    match rule.arguments.as_mut().and_then(|a| a.get_mut("validValues")) {
        Some(Value::Array(values)) => values,
        _ => panic!("validValues is a list"),
    }
}

fn with_version(mut c: Contract, version: &str) -> Contract {
    c.version = version.to_string();
    c
}

/// `edit` applied to the customer contract is breaking: refused as
/// 1.1.0, accepted as 2.0.0; the refusal names `path` and `kind`.
#[track_caller]
fn assert_breaking(kind: ChangeKind, path: &str, edit: impl Fn(&mut Contract)) {
    let old = customer();
    let mut new = customer();
    edit(&mut new);
    match gate(&old, &with_version(new.clone(), "1.1.0")) {
        Err(Refusal::Breaking { changes, from, to, .. }) => {
            assert_eq!((from.as_str(), to.as_str()), ("1.0.0", "1.1.0"));
            assert!(
                changes.iter().any(|c| c.kind == kind && c.path == path && c.breaking),
                "expected {kind:?} at {path} in {changes:#?}"
            );
            assert!(changes.iter().all(|c| c.breaking), "a refusal lists the breaking changes only");
        }
        other => panic!("expected a breaking-change refusal for {kind:?}, got {other:?}"),
    }
    let accepted = gate(&old, &with_version(new, "2.0.0")).expect("a major bump allows it");
    assert!(accepted.iter().any(|c| c.kind == kind && c.path == path));
}

/// `edit` is not breaking: accepted as 1.1.0 with a change of `kind`.
#[track_caller]
fn assert_compatible(kind: ChangeKind, path: &str, edit: impl Fn(&mut Contract)) {
    let old = customer();
    let mut new = customer();
    edit(&mut new);
    let changes = gate(&old, &with_version(new, "1.1.0")).expect("a minor bump allows it");
    assert!(
        changes.iter().any(|c| c.kind == kind && c.path == path && !c.breaking),
        "expected {kind:?} at {path} in {changes:#?}"
    );
    assert!(changes.iter().all(|c| !c.breaking), "{changes:#?}");
}

#[test]
fn an_unchanged_contract_has_no_changes() {
    assert_eq!(diff(&customer(), &customer()), Vec::new());
}

#[test]
fn breaking_changes_need_a_major_bump() {
    use ChangeKind::*;
    assert_breaking(PropertyRemoved, "customers.segment", |c| c.schema[0].properties.retain(|p| p.name != "segment"));
    assert_breaking(TypeChanged, "customers.segment", |c| prop(c, "segment").logical_type = Some(LogicalType::Integer));
    assert_breaking(TypeChanged, "customers.segment", |c| prop(c, "segment").logical_type = None);
    assert_breaking(BecameRequired, "customers.segment", |c| prop(c, "segment").required = Some(true));
    assert_breaking(BecameRequired, "customers.segment", |c| {
        let mut no_nulls = DataQuality {
            quality_type: Some(QualityType::Library),
            metric: Some(Metric::NullValues),
            ..DataQuality::default()
        };
        no_nulls.must_be = Some(json!(0));
        prop(c, "segment").quality.push(no_nulls);
    });
    assert_breaking(BecameOptional, "customers.email", |c| prop(c, "email").required = Some(false));
    assert_breaking(EnumNarrowed, "customers.status", |c| valid_values(prop(c, "status")).retain(|v| v != "inactive"));
    assert_breaking(EnumNarrowed, "customers.segment", |c| {
        let mut one_of = DataQuality {
            quality_type: Some(QualityType::Library),
            metric: Some(Metric::InvalidValues),
            ..DataQuality::default()
        };
        one_of.arguments =
            Some(serde_json::Map::from_iter([("validValues".to_string(), json!(["premium", "standard"]))]));
        one_of.must_be = Some(json!(0));
        prop(c, "segment").quality.push(one_of);
    });
    assert_breaking(FormatTightened, "customers.customer_id", |c| {
        options(prop(c, "customer_id")).format = Some("uuid".into())
    });
    assert_breaking(FormatTightened, "customers.email", |c| {
        options(prop(c, "email")).format = Some("idn-email".into())
    });
    assert_breaking(FormatChanged, "customers.registration_date", |c| {
        options(prop(c, "registration_date")).format = Some("dd.MM.yyyy".into());
    });
    assert_breaking(ConstraintTightened, "customers.name", |c| options(prop(c, "name")).max_length = Some(100));
    assert_breaking(ConstraintTightened, "customers.name", |c| options(prop(c, "name")).min_length = Some(2));
    assert_breaking(ConstraintTightened, "customers.segment", |c| options(prop(c, "segment")).max_length = Some(20));
    assert_breaking(ConstraintTightened, "customers.segment", |c| {
        options(prop(c, "segment")).pattern = Some("^[a-z]+$".into())
    });
    assert_breaking(ObjectRemoved, "customers", |c| c.schema.clear());
    assert_breaking(RequiredPropertyAdded, "customers.phone", |c| {
        let mut phone = SchemaProperty::new("phone", LogicalType::String);
        phone.required = Some(true);
        c.schema[0].properties.push(phone);
    });
    assert_breaking(KeyChanged, "customers.email", |c| prop(c, "email").unique = Some(true));
    assert_breaking(KeyChanged, "customers.customer_id", |c| prop(c, "customer_id").primary_key = Some(false));
    assert_breaking(PhysicalNameChanged, "customers.physicalName", |c| {
        c.schema[0].physical_name = Some("customers.events".into())
    });
    assert_breaking(ServerRemoved, "servers.local", |c| c.servers.clear());
    assert_breaking(ServerChanged, "servers.local.host", |c| c.servers[0].host = Some("kafka:9092".into()));
    assert_breaking(ServerChanged, "servers.local.format", |c| c.servers[0].format = Some("avro".into()));
    assert_breaking(ServerChanged, "servers.local.topic", |c| {
        c.servers[0].custom_properties[0].value = json!("crm.events")
    });
}

#[test]
fn nested_and_array_changes_are_found_by_path() {
    use ChangeKind::*;
    let address = || {
        let mut a = SchemaProperty::new("address", LogicalType::Object);
        a.properties = vec![SchemaProperty::new("city", LogicalType::String)];
        a
    };
    let tags = || {
        let mut t = SchemaProperty::new("tags", LogicalType::Array);
        t.items = Some(Box::new(SchemaProperty::new("", LogicalType::String)));
        t
    };
    let mut old = customer();
    old.schema[0].properties.extend([address(), tags()]);
    let mut new = old.clone();
    new.version = "1.1.0".into();
    new.schema[0].properties[6].properties[0].logical_type = Some(LogicalType::Integer);
    options(new.schema[0].properties[7].items.as_mut().expect("items")).max_length = Some(10);
    let Err(Refusal::Breaking { changes, .. }) = gate(&old, &new) else { panic!("nested changes are breaking") };
    let found: Vec<(&str, ChangeKind)> = changes.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(found, [("customers.address.city", TypeChanged), ("customers.tags[]", ConstraintTightened)]);
}

#[test]
fn compatible_changes_need_a_minor_bump_only() {
    use ChangeKind::*;
    assert_compatible(OptionalPropertyAdded, "customers.phone", |c| {
        c.schema[0].properties.push(SchemaProperty::new("phone", LogicalType::String));
    });
    assert_compatible(ObjectAdded, "addresses", |c| {
        let mut o = c.schema[0].clone();
        o.name = "addresses".into();
        c.schema.push(o);
    });
    assert_compatible(Metadata, "description", |c| {
        if let Some(d) = c.description.as_mut() {
            d.purpose = Some("Customers and their segments".into());
        }
    });
    assert_compatible(Metadata, "tags", |c| c.tags.push("gold".into()));
    assert_compatible(Metadata, "team", |c| {
        if let Some(crate::contract::Team::Object(t)) = c.team.as_mut() {
            t.name = Some("crm".into());
        }
    });
    assert_compatible(Metadata, "slaProperties", |c| c.sla_properties[0].value = json!("99.5%"));
    assert_compatible(Metadata, "status", |c| c.status = "deprecated".into());
    assert_compatible(Metadata, "customers.segment.description", |c| {
        prop(c, "segment").description = Some("Tier".into())
    });
    assert_compatible(Metadata, "servers.local.description", |c| c.servers[0].description = None);
    assert_compatible(EnumWidened, "customers.status", |c| valid_values(prop(c, "status")).push(json!("suspended")));
    assert_compatible(EnumWidened, "customers.status", |c| prop(c, "status").quality.clear());
    assert_compatible(FormatLoosened, "customers.email", |c| options(prop(c, "email")).format = None);
    assert_compatible(ConstraintLoosened, "customers.name", |c| options(prop(c, "name")).max_length = Some(500));
    assert_compatible(ConstraintLoosened, "customers.name", |c| options(prop(c, "name")).min_length = None);
    assert_compatible(QualityChanged, "customers.email.quality", |c| {
        prop(c, "email").quality[0].must_be_less_or_equal_to = Some(10.into());
    });
    assert_compatible(PhysicalTypeChanged, "customers.segment", |c| {
        prop(c, "segment").physical_type = Some("TEXT".into())
    });
    assert_compatible(ServerAdded, "servers.backup", |c| {
        let mut s = c.servers[0].clone();
        s.server = "backup".into();
        c.servers.push(s);
    });
    assert_compatible(Metadata, "customers.segment.physicalName", |c| {
        prop(c, "segment").physical_name = Some("segment_code".into());
    });
}

#[test]
fn widening_integer_to_number_is_compatible_and_narrowing_formats_is_not() {
    let mut old = customer();
    let mut visits = SchemaProperty::new("visits", LogicalType::Integer);
    visits.logical_type_options =
        Some(LogicalTypeOptions { format: Some("i32".into()), ..LogicalTypeOptions::default() });
    old.schema[0].properties.push(visits);
    let mut wider = with_version(old.clone(), "1.1.0");
    let v = wider.schema[0].properties.last_mut().expect("visits");
    v.logical_type = Some(LogicalType::Number);
    v.logical_type_options = None;
    let changes = gate(&old, &wider).expect("widening is compatible");
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::TypeWidened, ChangeKind::FormatLoosened]);

    let mut wider_int = with_version(old.clone(), "1.1.0");
    options(wider_int.schema[0].properties.last_mut().expect("visits")).format = Some("i64".into());
    assert_eq!(gate(&old, &wider_int).expect("compatible")[0].kind, ChangeKind::FormatLoosened);

    let mut narrower = with_version(old.clone(), "1.1.0");
    options(narrower.schema[0].properties.last_mut().expect("visits")).format = Some("i16".into());
    assert!(matches!(gate(&old, &narrower), Err(Refusal::Breaking { .. })));
    let mut back = with_version(wider.clone(), "1.2.0");
    back.schema[0].properties.last_mut().expect("visits").logical_type = Some(LogicalType::Integer);
    assert!(matches!(gate(&wider, &back), Err(Refusal::Breaking { .. })), "number -> integer narrows");
}

#[test]
fn bounds_and_multiples_tighten_and_loosen() {
    let mut old = customer();
    let mut score = SchemaProperty::new("score", LogicalType::Number);
    score.logical_type_options = Some(LogicalTypeOptions {
        minimum: Some(Bound::Number(0.into())),
        maximum: Some(Bound::Number(100.into())),
        multiple_of: Some(10.into()),
        ..LogicalTypeOptions::default()
    });
    old.schema[0].properties.push(score);
    let edit = |f: &dyn Fn(&mut LogicalTypeOptions)| {
        let mut new = with_version(old.clone(), "1.1.0");
        f(options(new.schema[0].properties.last_mut().expect("score")));
        diff(&old, &new).into_iter().map(|c| (c.kind, c.detail)).collect::<Vec<_>>()
    };
    use ChangeKind::*;
    assert_eq!(edit(&|o| o.minimum = Some(Bound::Number(1.into()))), [(ConstraintTightened, "minimum 0 -> 1".into())]);
    assert_eq!(
        edit(&|o| o.maximum = Some(Bound::Number(1000.into()))),
        [(ConstraintLoosened, "maximum 100 -> 1000".into())]
    );
    assert_eq!(edit(&|o| o.maximum = None), [(ConstraintLoosened, "maximum 100 -> (none)".into())]);
    assert_eq!(
        edit(&|o| o.exclusive_maximum = Some(Bound::Number(50.into()))),
        [(ConstraintTightened, "exclusiveMaximum (none) -> 50".into())]
    );
    assert_eq!(edit(&|o| o.multiple_of = Some(5.into())), [(ConstraintLoosened, "multipleOf 10 -> 5".into())]);
    assert_eq!(edit(&|o| o.multiple_of = Some(3.into())), [(ConstraintTightened, "multipleOf 10 -> 3".into())]);
}

#[test]
fn versions_must_increase_and_be_semver() {
    let old = customer();
    for same_or_older in ["1.0.0", "0.9.9", "1.0.0-rc.1"] {
        match gate(&old, &with_version(customer(), same_or_older)) {
            Err(Refusal::NotNewer { from, to, .. }) => {
                assert_eq!((from.as_str(), to.as_str()), ("1.0.0", same_or_older))
            }
            other => panic!("{same_or_older}: expected NotNewer, got {other:?}"),
        }
    }
    match gate(&old, &with_version(customer(), "1.1")) {
        Err(refusal @ Refusal::InvalidVersion { .. }) => {
            assert!(matches!(refusal.into_error(vec![]), Error::InvalidVersion { ref value, .. } if value == "1.1"));
        }
        other => panic!("expected InvalidVersion, got {other:?}"),
    }
    let mut other = with_version(customer(), "1.1.0");
    other.id = "customer_data_v2".into();
    assert!(matches!(gate(&old, &other), Err(Refusal::DifferentContract { .. })));
    assert_eq!(gate(&old, &with_version(customer(), "1.0.1")).expect("a patch with no change"), Vec::new());
    let not_newer = gate(&old, &old).expect_err("same version").into_error(vec![]);
    assert_eq!(
        not_newer.to_string(),
        "contract `customer_data_v1`: version: 1.0.0 is not greater than the registered version 1.0.0"
    );
}

#[test]
fn zero_major_versions_treat_minor_as_major() {
    let old = with_version(customer(), "0.3.2");
    let mut new = old.clone();
    new.schema[0].properties.pop();
    assert!(matches!(gate(&old, &with_version(new.clone(), "0.3.3")), Err(Refusal::Breaking { .. })));
    assert!(gate(&old, &with_version(new.clone(), "0.4.0")).is_ok());
    assert!(gate(&old, &with_version(new, "1.0.0")).is_ok());
    assert!(is_major_bump(&Version::new(1, 9, 0), &Version::new(2, 0, 0)));
    assert!(!is_major_bump(&Version::new(1, 0, 0), &Version::new(1, 9, 0)));
    assert_eq!(next_major(&Version::new(0, 3, 2)), Version::new(0, 4, 0));
    assert_eq!(next_major(&Version::new(1, 3, 2)), Version::new(2, 0, 0));
}

#[test]
fn the_refusal_lists_each_change_and_the_consumers() {
    let old = customer();
    let mut new = with_version(customer(), "1.1.0");
    new.schema[0].properties.retain(|p| p.name != "email");
    prop(&mut new, "segment").logical_type = Some(LogicalType::Integer);
    let refusal = gate(&old, &new).expect_err("breaking");
    let consumers = vec!["orders.customer_360".to_string(), "lake.gold_customers".to_string()];
    let error = refusal.into_error(consumers);
    assert!(matches!(&error, Error::BreakingChange { consumers, .. } if consumers.len() == 2));
    assert_eq!(
        error.to_string(),
        "contract `customer_data_v1` 1.0.0 -> 1.1.0: 2 breaking changes need a new major version (2.0.0 or later):\n  \
         - customers.email: property removed (was string, required)\n  \
         - customers.segment: logicalType string -> integer\n\
         would break: orders.customer_360, lake.gold_customers"
    );
    let alone = describe_refusal(
        "c",
        "0.2.0",
        "0.2.1",
        &[Change::new("t.a", ChangeKind::PropertyRemoved, "property removed")],
        &[],
    );
    assert_eq!(
        alone,
        "contract `c` 0.2.0 -> 0.2.1: 1 breaking change needs a new major version (0.3.0 or later):\n  - t.a: property removed\nno registered consumers"
    );
}

#[test]
fn changes_serialize_with_their_kind() {
    let change = Change::new("customers.email", ChangeKind::BecameOptional, "no longer required");
    assert_eq!(
        serde_json::to_value(&change).expect("serializes"),
        json!({"path": "customers.email", "kind": "became_optional", "breaking": true, "detail": "no longer required"})
    );
}

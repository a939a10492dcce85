//! Search behaviour: matching, ranking, filters, facets, writes, threads.

use std::sync::Arc;

use super::*;

fn doc(id: &str, name: &str) -> SearchDoc {
    SearchDoc {
        id: id.to_owned(),
        name: name.to_owned(),
        domain: "sales".to_owned(),
        owner: "team-sales".to_owned(),
        status: "active".to_owned(),
        ..SearchDoc::default()
    }
}

fn index(docs: &[SearchDoc]) -> SearchIndex {
    let index = SearchIndex::new().expect("index");
    index.upsert_many(docs).expect("upsert");
    index
}

fn all() -> SearchFilter {
    SearchFilter::default()
}

fn ids(index: &SearchIndex, query: &str, filter: &SearchFilter) -> Vec<String> {
    index.search(query, filter, 100).expect("search").hits.into_iter().map(|h| h.id).collect()
}

#[test]
fn a_name_match_beats_a_description_match() {
    let mut described = doc("d", "Order Lines");
    described.description = "Lines of every customer order".to_owned();
    let named = doc("n", "Customer Profiles");
    let idx = index(&[described, named]);
    assert_eq!(ids(&idx, "customer", &all()), ["n", "d"]);
}

#[test]
fn field_boosts_rank_name_then_tags_then_fields_then_description_then_owner() {
    // Every product has fields of the usual lengths; one word sits in a
    // different field of each.
    let base = |id: &str, name: &str| SearchDoc {
        description: "daily snapshot of the records kept by the team".to_owned(),
        tags: vec!["daily".to_owned(), "core".to_owned()],
        fields: vec!["record_id".to_owned(), "created_at".to_owned()],
        owner: "team-core".to_owned(),
        ..doc(id, name)
    };
    let mut docs = vec![base("1-name", "Ledger Entries")];
    let mut tagged = base("2-tag", "Alpha Entries");
    tagged.tags[1] = "ledger".to_owned();
    let mut fielded = base("3-field", "Beta Entries");
    fielded.fields[0] = "ledger_id".to_owned();
    let mut described = base("4-description", "Gamma Entries");
    described.description = "daily snapshot of the ledger kept by the team".to_owned();
    let mut owned = base("5-owner", "Delta Entries");
    owned.owner = "ledger-core".to_owned();
    docs.extend([owned, described, fielded, tagged, base("6-none", "Epsilon Entries")]);
    let idx = index(&docs);
    assert_eq!(ids(&idx, "ledger", &all()), ["1-name", "2-tag", "3-field", "4-description", "5-owner"]);
}

#[test]
fn higher_quality_wins_among_equal_text_matches_and_unmeasured_sits_between() {
    let with = |id: &str, q: Option<f64>| SearchDoc { quality: q, ..doc(id, "Customer Master Data") };
    let idx = index(&[with("low", Some(0.2)), with("high", Some(0.99)), with("unmeasured", None)]);
    assert_eq!(ids(&idx, "customer", &all()), ["high", "unmeasured", "low"]);
    let hits = idx.search("customer", &all(), 10).expect("search").hits;
    let ratio = hits[0].score / hits[2].score;
    assert!((ratio - (0.5 + 0.5 * 0.99) / (0.5 + 0.5 * 0.2)).abs() < 1e-3, "{ratio}");
}

#[test]
fn deprecated_ranks_below_active_and_retired_is_hidden_unless_asked_for() {
    let with = |id: &str, status: &str| SearchDoc { status: status.to_owned(), ..doc(id, "Invoices") };
    let idx = index(&[with("old", "Deprecated"), with("new", "active"), with("gone", "retired")]);
    assert_eq!(ids(&idx, "invoice", &all()), ["new", "old"]);
    assert_eq!(ids(&idx, "", &all()), ["new", "old"]);
    let retired = SearchFilter { status: Some("retired".to_owned()), ..all() };
    assert_eq!(ids(&idx, "invoice", &retired), ["gone"]);
    let r = idx.search("", &all(), 10).expect("search");
    assert_eq!(r.total, 2);
    assert!(r.facets.status.iter().all(|(s, _)| s != "retired"), "{:?}", r.facets.status);
}

fn catalogue() -> Vec<SearchDoc> {
    let mk = |id: &str, name: &str, domain: &str, owner: &str, status: &str, tags: &[&str], q: Option<f64>| SearchDoc {
        id: id.to_owned(),
        name: name.to_owned(),
        description: format!("{name} for the {domain} domain"),
        domain: domain.to_owned(),
        owner: owner.to_owned(),
        status: status.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        fields: vec!["customer_id".to_owned(), "updatedAt".to_owned()],
        quality: q,
    };
    vec![
        mk("p1", "Customer Master Data", "sales", "team-crm", "active", &["master_data", "pii"], Some(0.9)),
        mk("p2", "Customer Orders", "sales", "team-orders", "active", &["orders"], Some(0.7)),
        mk("p3", "Payments Ledger", "finance", "team-pay", "active", &["ledger", "pii"], None),
        mk("p4", "Shipment Events", "logistics", "team-ship", "draft", &["events"], Some(0.5)),
        mk("p5", "Legacy Customers", "sales", "team-crm", "deprecated", &["master_data"], Some(0.95)),
        mk("p6", "客户主数据", "sales", "team-crm", "active", &["master_data"], None),
        mk("p7", "Old Invoices", "finance", "team-pay", "retired", &["ledger"], None),
    ]
}

#[test]
fn each_facet_filters() {
    let idx = index(&catalogue());
    let by = |f: SearchFilter| {
        let mut v = ids(&idx, "", &f);
        v.sort();
        v
    };
    assert_eq!(by(SearchFilter { domain: Some("finance".into()), ..all() }), ["p3"]);
    assert_eq!(by(SearchFilter { owner: Some("team-crm".into()), ..all() }), ["p1", "p5", "p6"]);
    assert_eq!(by(SearchFilter { tag: Some("pii".into()), ..all() }), ["p1", "p3"]);
    assert_eq!(by(SearchFilter { status: Some("DRAFT".into()), ..all() }), ["p4"]);
    let two = SearchFilter { domain: Some("sales".into()), tag: Some("master_data".into()), ..all() };
    let mut customer = ids(&idx, "customer", &two);
    assert_eq!(customer[0], "p1");
    customer.sort();
    assert_eq!(customer, ["p1", "p5", "p6"], "p6 by its field customer_id");
    assert!(ids(&idx, "", &SearchFilter { domain: Some("nowhere".into()), ..all() }).is_empty());
    assert!(ids(&idx, "", &SearchFilter { domain: Some("Sales".into()), ..all() }).is_empty(), "exact values");
}

#[test]
fn facets_count_every_match_not_only_the_hits() {
    let idx = index(&catalogue());
    let r = idx.search("", &all(), 1).expect("search");
    assert_eq!((r.hits.len(), r.total), (1, 6));
    let pairs = |v: &[(String, u64)]| v.iter().map(|(s, n)| format!("{s}={n}")).collect::<Vec<_>>();
    assert_eq!(pairs(&r.facets.domain), ["sales=4", "finance=1", "logistics=1"]);
    assert_eq!(pairs(&r.facets.owner), ["team-crm=3", "team-orders=1", "team-pay=1", "team-ship=1"]);
    assert_eq!(pairs(&r.facets.tag), ["master_data=3", "pii=2", "events=1", "ledger=1", "orders=1"]);
    assert_eq!(pairs(&r.facets.status), ["active=4", "deprecated=1", "draft=1"]);
    let c = idx.search("customer", &all(), 0).expect("search");
    assert!(c.hits.is_empty());
    assert_eq!(c.total, 6, "every product has a field customer_id; the retired one is left out");
    let n = idx.search("ledger", &SearchFilter { domain: Some("finance".into()), ..all() }, 10).expect("search");
    assert_eq!((n.total, pairs(&n.facets.tag)), (1, vec!["ledger=1".to_owned(), "pii=1".to_owned()]));
}

#[test]
fn an_empty_query_lists_by_quality_then_name() {
    let idx = index(&catalogue());
    // p1 0.9, p2 0.7, unmeasured 0.8 for p3 and p6 (by name: Payments < 客户),
    // p4 0.5, p5 deprecated (0.95 × half).
    assert_eq!(ids(&idx, "", &all()), ["p1", "p3", "p6", "p2", "p4", "p5"]);
    assert_eq!(ids(&idx, "*", &all()), ids(&idx, "", &all()));
    assert_eq!(ids(&idx, "  ( ) ", &all()), ids(&idx, "", &all()));
}

#[test]
fn upsert_replaces_and_remove_removes() {
    let idx = index(&catalogue());
    let mut p2 = catalogue()[1].clone();
    p2.name = "Customer Returns".to_owned();
    idx.upsert(&p2).expect("upsert");
    idx.upsert(&p2).expect("same again");
    assert_eq!(idx.len(), 7);
    assert_eq!(ids(&idx, "returns", &all()), ["p2"]);
    let r = idx.search("customer", &all(), 10).expect("search");
    assert_eq!(r.hits.iter().filter(|h| h.id == "p2").count(), 1);
    assert_eq!(r.hits.iter().find(|h| h.id == "p2").map(|h| h.name.as_str()), Some("Customer Returns"));
    idx.remove("p2").expect("remove");
    idx.remove("p2").expect("twice");
    idx.remove("never").expect("unknown");
    assert_eq!(idx.len(), 6);
    assert!(!ids(&idx, "customer", &all()).contains(&"p2".to_owned()));
    assert!(ids(&idx, "returns", &all()).is_empty());
}

#[test]
fn the_last_write_of_an_id_wins_within_a_batch_and_across_remove() {
    let idx = index(&[doc("x", "First Name"), doc("y", "Other"), doc("x", "Second Name")]);
    assert_eq!(idx.len(), 2);
    assert!(ids(&idx, "first", &all()).is_empty());
    assert_eq!(ids(&idx, "second", &all()), ["x"]);
    // Removed and written again before any commit.
    idx.remove("y").expect("remove");
    idx.upsert(&doc("y", "Other Again")).expect("upsert");
    assert_eq!(ids(&idx, "other", &all()), ["y"]);
    assert_eq!(idx.search("again", &all(), 10).expect("search").total, 1);
    // Retiring a product hides it.
    idx.upsert(&SearchDoc { status: "retired".to_owned(), ..doc("y", "Other Again") }).expect("retire");
    assert!(ids(&idx, "other", &all()).is_empty());
    assert_eq!(idx.len(), 2, "a retired product is still indexed");
}

#[test]
fn set_quality_reranks() {
    let idx = index(&catalogue());
    assert_eq!(ids(&idx, "customer orders", &all())[0], "p2");
    assert_eq!(ids(&idx, "", &all())[0], "p1");
    idx.set_quality("p4", 1.0).expect("quality");
    assert_eq!(ids(&idx, "", &all())[0], "p4");
    idx.set_quality("p4", f64::NAN).expect("unmeasured");
    assert_eq!(ids(&idx, "", &all())[0], "p1");
    assert!(matches!(idx.set_quality("nope", 0.5), Err(Error::NotFound { .. })));
}

#[test]
fn prefixes_plurals_and_underscores_match() {
    let idx = index(&catalogue());
    let cust = ids(&idx, "cust", &all());
    assert_eq!(cust[0], "p1", "{cust:?}");
    assert!(cust.contains(&"p5".to_owned()));
    assert_eq!(ids(&idx, "Customers", &all()), ids(&idx, "customer", &all()));
    for q in ["master_data", "master data", "MASTER-DATA"] {
        let mut got = ids(&idx, q, &all());
        got.sort();
        assert_eq!(got, ["p1", "p5", "p6"], "{q}");
    }
    assert_eq!(ids(&idx, "pay led", &all()), ["p3"]);
    assert_eq!(ids(&idx, "updated", &all()).len(), 6, "camelCase field names split");
}

#[test]
fn chinese_names_are_found_by_any_part() {
    let idx = index(&catalogue());
    for q in ["客户主数据", "客户", "主数据", "数据", "客", "客户数据"] {
        let r = idx.search(q, &all(), 10).expect("search");
        assert_eq!(r.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["p6"], "{q}");
        assert!(!r.partial, "{q}");
    }
    assert_eq!(idx.search("客户", &all(), 1).expect("search").hits[0].name, "客户主数据");
    assert!(ids(&idx, "订单", &all()).is_empty());
}

#[test]
fn bad_syntax_is_words_and_no_common_word_falls_back_to_any() {
    let idx = index(&catalogue());
    for q in ["customer AND (", "customer)", "\"customer", "name:customer", "customer^2 OR", "-customer", "+++"] {
        let r = idx.search(q, &all(), 10);
        assert!(r.is_ok(), "{q}: {r:?}");
    }
    assert_eq!(ids(&idx, "customer AND (", &all()), ids(&idx, "customer", &all()));
    let r = idx.search("payments shipment", &all(), 10).expect("search");
    assert!(r.partial);
    let mut got: Vec<_> = r.hits.iter().map(|h| h.id.as_str()).collect();
    got.sort();
    assert_eq!(got, ["p3", "p4"]);
    let long = format!("{} customer {}", "x".repeat(500), "ledger ".repeat(40));
    assert!(idx.search(&long, &all(), 10).is_ok());
    let none = idx.search("zzzz qqqq", &all(), 10).expect("search");
    assert_eq!((none.total, none.partial), (0, true));
    assert!(!idx.search("customer", &all(), 10).expect("search").partial);
}

#[test]
fn writes_are_visible_to_the_next_search_without_an_explicit_commit() {
    let idx = SearchIndex::new().expect("index");
    assert!(idx.is_empty());
    assert!(idx.search("", &all(), 10).expect("search").hits.is_empty());
    idx.upsert(&doc("a", "Alpha")).expect("upsert");
    assert_eq!(ids(&idx, "alpha", &all()), ["a"]);
    idx.upsert(&doc("b", "Alpha Beta")).expect("upsert");
    idx.commit().expect("commit");
    idx.commit().expect("nothing to commit");
    assert_eq!(ids(&idx, "alpha", &all()), ["a", "b"]);
}

#[test]
fn the_order_does_not_depend_on_segments() {
    let docs: Vec<SearchDoc> = (0..30).map(|i| doc(&format!("id{i:02}"), &format!("Same {}", i % 3))).collect();
    let one = index(&docs);
    let many = SearchIndex::new().expect("index");
    for d in docs.iter().rev() {
        many.upsert(d).expect("upsert");
        many.commit().expect("commit");
    }
    for q in ["same", "", "sa"] {
        assert_eq!(ids(&one, q, &all()), ids(&many, q, &all()), "{q}");
    }
    assert_eq!(ids(&one, "", &all())[..3], ["id00", "id03", "id06"]);
}

#[test]
fn concurrent_upserts_and_searches_end_in_the_right_state() {
    let idx = Arc::new(SearchIndex::new().expect("index"));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let idx = Arc::clone(&idx);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let mut d = doc(&format!("t{t}-{i:03}"), &format!("Product {t} {i}"));
                    d.tags = vec![format!("writer{t}")];
                    idx.upsert(&d).expect("upsert");
                    if i % 10 == 0 {
                        // Replace an earlier one, remove another.
                        d.name = format!("Renamed {t} {i}");
                        idx.upsert(&d).expect("upsert again");
                        idx.remove(&format!("t{t}-{:03}", i + 1)).expect("remove not yet added");
                    }
                    if i % 7 == 0 {
                        idx.search("product", &all(), 5).expect("search");
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let idx = Arc::clone(&idx);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..50 {
                    let r = idx.search("", &all(), 1000).expect("search");
                    assert!(r.total >= last, "a search never sees fewer products than an earlier one");
                    assert_eq!(r.hits.len(), r.total);
                    last = r.total;
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(readers) {
        t.join().expect("thread");
    }
    assert_eq!(idx.len(), 400);
    let r = idx.search("", &all(), 1000).expect("search");
    assert_eq!(r.total, 400);
    let mut seen: Vec<_> = r.hits.iter().map(|h| h.id.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 400);
    assert_eq!(idx.search("renamed", &all(), 1000).expect("search").total, 40);
    assert_eq!(r.facets.tag.iter().map(|(_, n)| n).sum::<u64>(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_tasks_share_it_behind_an_arc() {
    let idx = Arc::new(SearchIndex::new().expect("index"));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let idx = Arc::clone(&idx);
            tokio::task::spawn_blocking(move || {
                for i in 0..25 {
                    idx.upsert(&doc(&format!("{t}-{i}"), "Shared")).expect("upsert");
                    idx.search("shared", &all(), 3).expect("search");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(idx.search("shared", &all(), 0).expect("search").total, 200);
}

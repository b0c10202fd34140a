use super::*;
use proptest::prelude::*;

fn key(tenant: &str, gen: u64, route: &[u8], body: &[u8]) -> CacheKey {
    let mut b = KeyBuilder::new(tenant, gen).unwrap();
    b.part(route);
    assert!(b.body(body));
    b.finish()
}

#[test]
fn no_key_without_a_tenant() {
    assert!(KeyBuilder::new("", 0).is_none());
}

#[test]
fn excluded_fields_and_key_order_do_not_change_the_key() {
    let a = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;
    let b = br#"{"temperature":0, "stream":true,"stream_options":{"include_usage":true},"user":"u1","metadata":{"x":"y"},
        "messages":[{"content":"hi","role":"user"}],"model":"m","store":false,"safety_identifier":"s","prompt_cache_key":"p"}"#;
    assert_eq!(key("t", 1, b"r", a), key("t", 1, b"r", b));
}

#[test]
fn output_changing_fields_change_the_key() {
    let base = key("t", 1, b"r", br#"{"model":"m","messages":[]}"#);
    for other in [
        &br#"{"model":"n","messages":[]}"#[..],
        br#"{"model":"m","messages":[],"temperature":1}"#,
        br#"{"model":"m","messages":[],"seed":1}"#,
        br#"{"model":"m","messages":[],"tools":[]}"#,
        br#"{"model":"m","messages":[],"n":2}"#,
    ] {
        assert_ne!(base, key("t", 1, b"r", other));
    }
    assert_ne!(base, key("t", 2, b"r", br#"{"model":"m","messages":[]}"#));
    assert_ne!(base, key("t", 1, b"r2", br#"{"model":"m","messages":[]}"#));
}

#[test]
fn a_body_that_is_not_an_object_makes_no_key() {
    let mut b = KeyBuilder::new("t", 0).unwrap();
    assert!(!b.body(b"[1,2]"));
    assert!(!b.body(b"not json"));
}

#[test]
fn parts_are_length_prefixed() {
    let mut a = KeyBuilder::new("ab", 0).unwrap();
    a.part(b"c");
    let mut b = KeyBuilder::new("a", 0).unwrap();
    b.part(b"bc");
    assert_ne!(a.finish(), b.finish());
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 \"\\\\é]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        "[a-z0-9-]{1,12}",
        prop::collection::vec(("(user|assistant|system)", ".{0,40}"), 1..4),
        prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..4),
    )
        .prop_map(|(model, messages, extra)| {
            let mut m = serde_json::Map::new();
            for (k, v) in extra {
                m.insert(k, v);
            }
            m.insert("model".into(), Value::from(model));
            let msgs: Vec<Value> = messages
                .into_iter()
                .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
                .collect();
            m.insert("messages".into(), Value::from(msgs));
            serde_json::to_vec(&Value::Object(m)).unwrap()
        })
}

proptest! {
    /// Two tenants sending the same request, under rules of any generation
    /// and the same route, never get the same key; one tenant sending it
    /// twice does.
    #[test]
    fn two_tenants_never_share_a_key(
        a in "[a-z0-9_-]{1,16}",
        b in "[a-z0-9_-]{1,16}",
        gen_a in any::<u64>(),
        gen_b in any::<u64>(),
        body in request(),
    ) {
        prop_assume!(a != b);
        let ka = key(&a, gen_a, b"route", &body);
        let kb = key(&b, gen_b, b"route", &body);
        prop_assert_ne!(ka, kb);
        prop_assert_eq!(ka, key(&a, gen_a, b"route", &body));
    }

    /// The canonical form is a fixed point: canonicalizing it again gives it back.
    #[test]
    fn canonical_form_is_stable(body in request()) {
        let c = canonical(&body).unwrap();
        prop_assert_eq!(canonical(&c).unwrap(), c);
    }
}

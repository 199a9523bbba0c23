use super::*;
use crate::host::fake::FakeHost;
use crate::host::HeaderMap;
use crate::peer::PeerNode;
use crate::values::encode_pairs;

fn eval(src: &str, host: &FakeHost) -> Result<Value, EvalError> {
    let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err}"));
    e.eval(&Attributes::new(host))
}

fn label(src: &str, host: &FakeHost) -> Option<String> {
    eval(src, host).ok().as_ref().and_then(to_label)
}

fn gateway_peer() -> Vec<u8> {
    PeerNode {
        workload_name: "istio-ingressgateway".into(),
        namespace: "istio-system".into(),
        istio_version: "1.17.8".into(),
        mesh_id: "cluster.local".into(),
        labels: Some(vec![
            ("app".into(), "istio-ingressgateway".into()),
            ("istio".into(), "ingressgateway".into()),
        ]),
        instance_ips: vec!["10.10.0.22".into()],
        ..PeerNode::default()
    }
    .to_flatbuffer()
}

/// The request of crates.md §2/§3: GET /items, x-user: jason, response 503.
fn book_host() -> FakeHost {
    FakeHost::new()
        .with_str(&["request", "method"], "GET")
        .with_str(&["request", "url_path"], "/items")
        .with_header(HeaderMap::RequestHeaders, "x-user", "jason")
        .with_i64(&["response", "code"], 503)
        .with_str(&["node", "metadata", "MESH_ID"], "cluster.local")
        .with_str(&["node", "metadata", "LABELS", "version"], "v1")
        .with_property(&["upstream_peer"], gateway_peer())
}

#[test]
fn book_expressions_read_only_what_they_reference() {
    // Expected values: crates.md §2 lists them for this request.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "(request.method.startsWith('GET') ? 1 : 0)",
            "1",
            &["property:request.method"],
        ),
        (
            "request.url_path == '/items' && request.method == 'GET'",
            "true",
            &["property:request.url_path", "property:request.method"],
        ),
        (
            "node.metadata['MESH_ID']",
            "cluster.local",
            &["property:node.metadata.MESH_ID"],
        ),
        (
            "node.metadata.LABELS.version",
            "v1",
            &["property:node.metadata.LABELS.version"],
        ),
        (
            "upstream_peer.istio_version",
            "1.17.8",
            &["property:upstream_peer"],
        ),
        (
            "upstream_peer.labels['app'].value",
            "istio-ingressgateway",
            &["property:upstream_peer"],
        ),
        (
            "request.headers['x-user'] == 'jason'",
            "true",
            &["header:RequestHeaders:x-user"],
        ),
        ("response.code >= 500", "true", &["property:response.code"]),
        ("string(response.code)", "503", &["property:response.code"]),
    ];
    for (src, want, reads) in cases {
        let host = book_host();
        assert_eq!(label(src, &host).as_deref(), Some(*want), "{src}");
        assert_eq!(host.reads(), *reads, "{src}");
    }
}

#[test]
fn attributes_are_memoised_across_expressions() {
    let host = book_host();
    let attrs = Attributes::new(&host);
    let a = Expr::compile("request.method == 'GET'").unwrap();
    let b = Expr::compile("request.method.size()").unwrap();
    let p1 = Expr::compile("upstream_peer.workload_name").unwrap();
    let p2 = Expr::compile("upstream_peer.namespace").unwrap();
    let h = Expr::compile("request.headers['x-user']").unwrap();
    for _ in 0..2 {
        assert_eq!(a.eval(&attrs), Ok(Value::Bool(true)));
        assert_eq!(b.eval(&attrs), Ok(Value::Int(3)));
        assert_eq!(
            to_label(&p1.eval(&attrs).unwrap()).unwrap(),
            "istio-ingressgateway"
        );
        assert_eq!(to_label(&p2.eval(&attrs).unwrap()).unwrap(), "istio-system");
        assert_eq!(to_label(&h.eval(&attrs).unwrap()).unwrap(), "jason");
    }
    assert_eq!(
        host.reads(),
        [
            "property:request.method",
            "property:upstream_peer",
            "header:RequestHeaders:x-user"
        ]
    );
    // The typed peer accessor shares the same decode.
    assert_eq!(attrs.upstream_peer().unwrap().mesh_id, "cluster.local");
    assert_eq!(host.reads().len(), 3);
}

#[test]
fn header_map_membership_and_presence() {
    let host = book_host();
    assert_eq!(
        eval("'x-user' in request.headers", &host),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        eval("has(request.headers.nope)", &host),
        Ok(Value::Bool(false))
    );
    assert!(eval("request.headers['missing']", &host).is_err());
    assert!(eval("request.headers['missing'] == 'x'", &host).is_err());
    // Errors are absorbed by || as the CEL spec says.
    assert_eq!(
        eval("request.headers['missing'] == 'x' || true", &host),
        Ok(Value::Bool(true))
    );
    let with_map = FakeHost::new().with_property(
        &["request", "headers"],
        encode_pairs(&[(":method", "GET"), ("x-user", "jason")]),
    );
    assert_eq!(eval("size(request.headers)", &with_map), Ok(Value::Int(2)));
}

#[test]
fn matches_uses_posix_classes_and_reports_bad_patterns() {
    // Istio's operation.json GetBook rule, with the plugin_test.cc paths.
    let rule = "request.url_path.matches('^/shelves/[[:alnum:]]*/books/[[:alnum:]]*$')";
    let hit = FakeHost::new().with_str(&["request", "url_path"], "/shelves/a101/books/b1122");
    let miss = FakeHost::new().with_str(&["request", "url_path"], "/shelves/-----/books/b1122");
    assert_eq!(eval(rule, &hit), Ok(Value::Bool(true)));
    assert_eq!(eval(rule, &miss), Ok(Value::Bool(false)));
    assert!(regex::is_cached(
        "^/shelves/[[:alnum:]]*/books/[[:alnum:]]*$"
    ));
    // RE2 semantics: an unanchored search.
    assert_eq!(
        eval("matches(request.url_path, 'books')", &hit),
        Ok(Value::Bool(true))
    );
    // A bad regex is an evaluation error, not a panic and not a compile error.
    assert!(matches!(
        eval("matches(request.url_path, '[')", &hit),
        Err(EvalError(cel::ExecutionError::FunctionError { .. }))
    ));
}

#[test]
fn bare_identifiers_read_filter_state_and_xds_maps_to_old_names() {
    let host = FakeHost::new()
        .with_str(&["istio_operationId"], "GetBook")
        .with_str(&["route_name"], "default")
        .with_str(
            &["cluster_name"],
            "outbound|80||catalog.istioinaction.svc.cluster.local",
        )
        .with_str(
            &[
                "cluster_metadata",
                "filter_metadata",
                "istio",
                "default_original_port",
            ],
            "80",
        )
        .with_property(&["upstream_peer_id"], b"server".to_vec());
    assert_eq!(
        label("istio_operationId", &host).as_deref(),
        Some("GetBook")
    );
    assert_eq!(host.reads(), ["property:istio_operationId"]);
    host.clear_reads();
    assert_eq!(label("xds.route_name", &host).as_deref(), Some("default"));
    assert_eq!(host.reads(), ["property:route_name"]);
    assert_eq!(
        label("xds.cluster_name", &host).as_deref(),
        Some("outbound|80||catalog.istioinaction.svc.cluster.local")
    );
    assert_eq!(
        label(
            "xds.cluster_metadata.filter_metadata.istio.default_original_port",
            &host
        )
        .as_deref(),
        Some("80")
    );
    assert_eq!(
        label("string(upstream_peer_id)", &host).as_deref(),
        Some("server")
    );
    // Absent filter state: an error (→ `unknown` in stats).
    assert!(eval("istio_responseClass", &host).is_err());
    // Type names never reach the host.
    host.clear_reads();
    assert_eq!(eval("type(1) == int", &host), Ok(Value::Bool(true)));
    assert!(host.reads().is_empty());
}

#[test]
fn typed_leaves_decode_envoy_encodings() {
    let host = FakeHost::new()
        .with_bool(&["connection", "mtls"], true)
        .with_property(&["connection", "id"], 7u64.to_le_bytes().to_vec())
        .with_i64(&["destination", "port"], 9080)
        .with_i64(&["request", "duration"], 3_000_000)
        .with_i64(&["listener_direction"], 1)
        .with_property(&["response", "code"], vec![1, 2, 3]);
    assert_eq!(eval("connection.mtls", &host), Ok(Value::Bool(true)));
    assert_eq!(eval("connection.id == 7u", &host), Ok(Value::Bool(true)));
    assert_eq!(label("destination.port", &host).as_deref(), Some("9080"));
    assert_eq!(eval("request.duration / 1000000", &host), Ok(Value::Int(3)));
    assert_eq!(
        eval("listener_direction == 1", &host),
        Ok(Value::Bool(true))
    );
    // A wrongly sized int is treated as absent, not misread.
    assert!(eval("response.code", &host).is_err());
}

#[test]
fn node_metadata_maps_by_index_decode_pairs() {
    let labels = encode_pairs(&[("app", "webapp"), ("version", "v1")]);
    let host = FakeHost::new()
        .with_property(&["node", "metadata", "LABELS"], labels.clone())
        .with_str(&["node", "metadata", "LABELS", "app"], "webapp")
        .with_property(&["node", "metadata", "CUSTOM_MAP"], labels);
    // Known intermediate maps are read per key, as Envoy resolves the sub-path itself.
    assert_eq!(
        label("node.metadata['LABELS']['app']", &host).as_deref(),
        Some("webapp")
    );
    assert_eq!(host.reads(), ["property:node.metadata.LABELS.app"]);
    assert_eq!(eval("size(node.metadata.LABELS)", &host), Ok(Value::Int(2)));
    // Any other map-valued attribute is read whole and decoded from the pairs encoding.
    assert_eq!(
        label("node.metadata.CUSTOM_MAP['version']", &host).as_deref(),
        Some("v1")
    );
}

#[test]
fn hostile_peer_bytes_yield_errors_not_panics() {
    for bytes in [
        vec![0xffu8; 40],
        vec![1, 0, 0],
        gateway_peer()[..20].to_vec(),
    ] {
        let host = FakeHost::new().with_property(&["upstream_peer"], bytes);
        assert!(eval("upstream_peer.istio_version", &host).is_err());
        assert!(eval("upstream_peer.labels['app'].value", &host).is_err());
    }
    // A peer without a labels vector: labels is missing, has() is false.
    let bare = PeerNode {
        workload_name: "w".into(),
        ..PeerNode::default()
    };
    let host = FakeHost::new().with_property(&["downstream_peer"], bare.to_flatbuffer());
    assert!(eval("downstream_peer.labels['app'].value", &host).is_err());
    assert_eq!(
        eval("has(downstream_peer.labels)", &host),
        Ok(Value::Bool(false))
    );
    // Unset string fields read as "" (FlatBuffers default).
    assert_eq!(
        label("downstream_peer.istio_version", &host).as_deref(),
        Some("")
    );
}

#[test]
fn malformed_expressions_are_errors_not_panics() {
    // crates.md §3: these panicked cel-interpreter 0.10 (CVE-2025-62162); plus Istio's BadExpr.
    let mut bad: Vec<String> = [
        "x(1,",
        "1 +",
        ")",
        "!",
        "'unterminated",
        "{'a':",
        "[1,2].map(x,",
        "if a = b then return 5",
        "",
        "   ",
        "a.b.",
        "request.headers[",
        "1 ? 2",
        "\u{0}",
        "has(request.headers['x'])",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    bad.push(format!("{}1{}", "[".repeat(150), "]".repeat(150)));
    bad.push(format!("{}1{}", "f(".repeat(150), ")".repeat(150)));
    bad.push("[".repeat(3000));
    bad.push(format!("1{}", " + 1".repeat(5000)));
    bad.push("a".repeat(MAX_SOURCE_LEN + 1));
    for src in &bad {
        assert!(
            Expr::compile(src).is_err(),
            "{} compiled",
            src.chars().take(40).collect::<String>()
        );
    }
    // Moderate nesting still compiles and evaluates.
    let nested = format!("{}1{} == 1", "(".repeat(40), ")".repeat(40));
    assert_eq!(eval(&nested, &FakeHost::new()), Ok(Value::Bool(true)));
}

#[test]
fn result_helpers() {
    assert_eq!(to_label(&Value::Int(200)).as_deref(), Some("200"));
    assert_eq!(to_label(&Value::UInt(7)).as_deref(), Some("7"));
    assert_eq!(to_label(&Value::Bool(false)).as_deref(), Some("false"));
    assert_eq!(to_label(&Value::Null), None);
    assert_eq!(to_bool(&Value::Bool(true)), Some(true));
    assert_eq!(to_bool(&Value::Int(1)), None);
    assert_eq!(to_i64(&Value::UInt(5)), Some(5));
    assert_eq!(to_i64(&Value::UInt(u64::MAX)), None);
    assert_eq!(to_i64(&Value::Float(1.0)), None);
}

/// Hostile nesting within the source-length limit must fail cleanly even on a wasm-sized
/// (1 MiB) stack: the parser, the depth check and dropping the AST all run here.
#[test]
fn deep_nesting_is_rejected_on_a_small_stack() {
    let n = MAX_SOURCE_LEN / 4;
    let inputs = vec![
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1{}", "[".repeat(n), "]".repeat(n)),
        format!("{}1", "-".repeat(MAX_SOURCE_LEN - 1)),
        format!("{}true", "!".repeat(MAX_SOURCE_LEN - 4)),
        format!("{}1{}", "f(".repeat(n), ")".repeat(n)),
        format!("a{}", "[0]".repeat(n)),
        format!("a{}", ".b".repeat(n)),
        format!("1{}", " + 1".repeat(n - 1)),
        format!("{}1", "true ? 1 : ".repeat(MAX_SOURCE_LEN / 12)),
        format!("{}x{}", "{'a': ".repeat(n), "}".repeat(n)),
        format!("{}", "[1].map(x, ".repeat(MAX_SOURCE_LEN / 12)),
    ];
    let handle = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            inputs
                .iter()
                .map(|src| match Expr::compile(src) {
                    Err(_) => true,
                    // Accepted ones must have a shallow AST that also evaluates here.
                    Ok(e) => {
                        let host = FakeHost::new();
                        let _ = e.eval(&Attributes::new(&host));
                        false
                    }
                })
                .collect::<Vec<bool>>()
        })
        .unwrap();
    let rejected = handle.join().expect("no stack overflow");
    // Nothing crashed. The parser folds redundant parentheses and double `!`/`-` (as cel-go's
    // does), so those may compile to a shallow AST; every genuinely deep one is refused.
    for i in [1, 4, 5, 6, 8, 9, 10] {
        assert!(rejected[i], "input {i} accepted: {rejected:?}");
    }
    // Depth 40 is fine and evaluates.
    let ok = format!("{}true", "!".repeat(40));
    assert_eq!(eval(&ok, &FakeHost::new()), Ok(Value::Bool(true)));
    assert!(Expr::compile("google.protobuf.Int64Value{value: 1}").is_err());
}

/// The Pratt parser we compile with must agree with cel's default (ANTLR) parser on the
/// semantics table of crates.md §3 and on Istio-style expressions: same values, same
/// success/error outcome.
#[test]
fn pratt_parser_agrees_with_the_antlr_parser() {
    let host = book_host().with_property(
        &["request", "headers"],
        encode_pairs(&[("x-user", "jason"), (":method", "GET")]),
    );
    let exprs = [
        "'GET' in ['GET','POST']",
        "'x-user' in request.headers",
        "response.code in [500, 503]",
        "request.headers['missing'] == 'x' || true",
        "true || request.headers['missing'] == 'x'",
        "has(request.headers.missing)",
        "has(request.method)",
        "request.method + ':' + request.url_path",
        "response.code >= 500u",
        "response.code >= 500.0",
        "response.code == 503.0",
        "5 == 5u",
        "1u + 1",
        "9223372036854775807 + 1",
        "1 / 0",
        "size('abc')",
        "request.url_path.size()",
        "request.url_path.endsWith('ms') && request.url_path.contains('it')",
        "[1,2,3].exists(x, x > 2)",
        "[1,2,3].map(x, x * 2)[2]",
        "[1,2,3].filter(x, x % 2 == 1).size()",
        "[1,2,3].all(x, x > 0)",
        "'a' < 1",
        "type(1) == int",
        "dyn(1) == 1",
        "-(-5)",
        "!false && !!true",
        "'\\x41\\u0042\\n' == 'AB\\n'",
        "b'abc' == bytes('abc')",
        "r'\\d' == '\\\\d'",
        "double(1) / 2.0 == 0.5",
        "int('42') + 1",
        "{'a': 1, 'b': 2}['b']",
        "{'a': 1}.a",
        "[1, 2][1]",
        "null == null",
        "(request.method.startsWith('GET') ? 1 : 0)",
        "upstream_peer.labels['app'].value + '/' + upstream_peer.namespace",
        "string(response.code) + 'x'",
        "1 < 2 < 3",
        "1 +",
    ];
    for src in exprs {
        let ours = Expr::compile(src).map(|e| e.eval(&Attributes::new(&host)));
        let theirs = cel::Program::compile(src).map(|p| {
            let attrs = Attributes::new(&host);
            let mut ctx = cel::Context::with_env(std::sync::Arc::clone(env()));
            ctx.set_variable_resolver(&attrs);
            p.execute(&ctx)
        });
        match (ours, theirs) {
            (Ok(a), Ok(b)) => match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{src}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{src}: pratt {a:?} vs antlr {b:?}"),
            },
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{src}: pratt compiles {} vs antlr {}", a.is_ok(), b.is_ok()),
        }
    }
}

#[test]
fn map_keys_containing_dots_stay_one_path_segment() {
    let host = FakeHost::new()
        .with_str(
            &[
                "node",
                "metadata",
                "LABELS",
                "service.istio.io/canonical-name",
            ],
            "webapp",
        )
        .with_str(&["filter_state", "wasm.istio_operationId"], "getitems");
    assert_eq!(
        label(
            "node.metadata.LABELS['service.istio.io/canonical-name']",
            &host
        )
        .as_deref(),
        Some("webapp")
    );
    assert_eq!(
        host.reads(),
        ["property:node.metadata.LABELS.service.istio.io/canonical-name"]
    );
    assert_eq!(
        label("filter_state['wasm.istio_operationId']", &host).as_deref(),
        Some("getitems")
    );
}

/// Token soup: thousands of random (mostly malformed, some valid) expressions over our lazy
/// values. Compile and evaluation may fail, but must never panic.
#[test]
fn random_expressions_never_panic() {
    let tokens = [
        "request.headers",
        "upstream_peer",
        "upstream_peer.labels",
        "node.metadata",
        "request",
        "response.code",
        "request.method",
        "'x-user'",
        "'app'",
        "1",
        "2u",
        "1.5",
        "true",
        "null",
        "b'x'",
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        ":",
        ",",
        ".",
        "+",
        "-",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "!",
        "?",
        "in",
        "size",
        "has",
        "map",
        "exists",
        "all",
        "filter",
        "matches",
        "startsWith",
        "string",
        "int",
        "type",
        "dyn",
        "x",
        "k",
        "['app']",
        ".value",
        "['x-user']",
        "[0]",
        ".size()",
        "'['",
        "'(a'",
        "istio_operationId",
        "xds",
        "xds.node",
    ];
    let host = book_host()
        .with_property(
            &["request", "headers"],
            encode_pairs(&[("x-user", "jason"), (":method", "GET")]),
        )
        .with_str(&["istio_operationId"], "getitems");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut compiled = 0;
    for _ in 0..20000 {
        let len = 1 + next(10);
        let src: Vec<&str> = (0..len).map(|_| tokens[next(tokens.len())]).collect();
        let src = src.join(" ");
        if let Ok(e) = Expr::compile(&src) {
            compiled += 1;
            let _ = e.eval(&Attributes::new(&host));
        }
    }
    // Also the well-formed shapes most likely to hit custom-value code paths.
    for src in [
        "size(upstream_peer)",
        "upstream_peer == upstream_peer",
        "upstream_peer + 1",
        "[upstream_peer][0].namespace",
        "{'a': request.headers}.a['x-user']",
        "request.headers.map(k, k)",
        "request.headers.exists(k, k == 'x-user')",
        "upstream_peer.labels.all(k, true)",
        "node.metadata.exists(k, true)",
        "request.headers[1]",
        "upstream_peer[true]",
        "upstream_peer.labels['app']",
        "upstream_peer",
        "request",
        "'app' in upstream_peer.labels",
        "size(upstream_peer.labels)",
        "upstream_peer.app_containers.size()",
        "dyn(request.headers)['x-user']",
        "type(upstream_peer)",
        "string(request.headers)",
    ] {
        let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err}"));
        let _ = e.eval(&Attributes::new(&host));
    }
    assert!(compiled > 50, "only {compiled} random expressions compiled");
}

#[test]
fn comprehensions_iterate_map_keys() {
    let host = book_host()
        .with_property(
            &["request", "headers"],
            encode_pairs(&[(":method", "GET"), ("x-user", "jason")]),
        )
        .with_property(
            &["node", "metadata", "LABELS"],
            encode_pairs(&[("app", "webapp"), ("version", "v1")]),
        );
    for (src, want) in [
        ("request.headers.exists(k, k.startsWith('x-'))", true),
        ("request.headers.all(k, k.startsWith('x-'))", false),
        (
            "request.headers.filter(k, k == ':method').size() == 1",
            true,
        ),
        ("upstream_peer.labels.exists(k, k == 'istio')", true),
        (
            "upstream_peer.labels.map(k, upstream_peer.labels[k].value).size() == 2",
            true,
        ),
        ("node.metadata.LABELS.exists_one(k, k == 'version')", true),
    ] {
        assert_eq!(eval(src, &host), Ok(Value::Bool(want)), "{src}");
    }
}

/// Envoy serialises a CEL list as pairs with the serialised elements as keys and empty values
/// (`serializeValue`, kList); the Istio 1.17 "Customized" golden reads
/// `xds.cluster_metadata.filter_metadata.istio.services[0].name` and expects `server`.
#[test]
fn struct_lists_decode_as_lists() {
    let service = encode_pairs(&[
        ("host", "server.default.svc.cluster.local"),
        ("name", "server"),
    ]);
    let other = encode_pairs(&[("name", "other")]);
    let list = encode_pairs(&[(service, Vec::new()), (other, Vec::new())]);
    let host = FakeHost::new().with_property(
        &["cluster_metadata", "filter_metadata", "istio", "services"],
        list,
    );
    let src = "xds.cluster_metadata.filter_metadata.istio.services";
    assert_eq!(
        label(&format!("{src}[0].name"), &host).as_deref(),
        Some("server")
    );
    assert_eq!(
        label(&format!("{src}[1].name"), &host).as_deref(),
        Some("other")
    );
    assert_eq!(
        label(&format!("string(size({src}))"), &host).as_deref(),
        Some("2")
    );
    assert!(eval(&format!("{src}[2].name"), &host).is_err());
    // A list of strings: elements are the keys.
    let host = FakeHost::new().with_property(
        &["node", "metadata", "TAGS"],
        encode_pairs(&[("a", ""), ("b", "")]),
    );
    assert_eq!(label("node.metadata.TAGS[1]", &host).as_deref(), Some("b"));
    assert_eq!(
        eval("'a' in node.metadata.TAGS", &host),
        Ok(Value::Bool(true))
    );
    // A pairs value with any non-empty value stays a map.
    let host = FakeHost::new().with_property(
        &["node", "metadata", "M"],
        encode_pairs(&[("a", ""), ("b", "x")]),
    );
    assert_eq!(label("node.metadata.M['b']", &host).as_deref(), Some("x"));
    assert_eq!(label("node.metadata.M['a']", &host).as_deref(), Some(""));
}

/// A peer supplied by the caller (decoded earlier for the same peer id) is used as is: no
/// `upstream_peer` read, no second decode; `None` means "no peer" without a read either.
#[test]
fn provided_peers_are_not_read_again() {
    let host = book_host();
    let attrs = Attributes::new(&host);
    let node = PeerNode::from_flatbuffer(&gateway_peer()).unwrap();
    attrs.provide_upstream_peer(Some(std::sync::Arc::new(node)));
    attrs.provide_downstream_peer(None);
    assert_eq!(
        label("upstream_peer.istio_version", &host).as_deref(),
        Some("1.17.8")
    );
    host.clear_reads();
    let e = Expr::compile("upstream_peer.istio_version").unwrap();
    assert_eq!(
        to_label(&e.eval(&attrs).unwrap()).as_deref(),
        Some("1.17.8")
    );
    assert!(Expr::compile("downstream_peer.istio_version")
        .unwrap()
        .eval(&attrs)
        .is_err());
    assert!(host.reads().is_empty(), "{:?}", host.reads());
    // Field lookups answered in one step keep CEL's semantics around them.
    let host = book_host();
    assert!(eval("upstream_peer.no_such_field", &host).is_err());
    assert_eq!(
        eval("has(upstream_peer.istio_version)", &host),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        label("upstream_peer.labels['app'].value", &host).as_deref(),
        Some("istio-ingressgateway")
    );
    assert!(eval("downstream_peer.istio_version", &host).is_err());
}

/// `eval` (whatever direct path it takes) and the interpreter alone succeed or fail together,
/// and agree on the value when they succeed.
fn agrees_with_interpreter(e: &Expr, host: &FakeHost, src: &str) {
    let direct = e.eval(&Attributes::new(host));
    let interpreted = e.eval_interpreted(&Attributes::new(host));
    assert_eq!(
        direct.is_ok(),
        interpreted.is_ok(),
        "{src}: {direct:?} vs {interpreted:?}"
    );
    if let (Ok(a), Ok(b)) = (&direct, &interpreted) {
        assert_eq!(a, b, "{src}");
    }
    // The leaves-only path (attributegen's) answers only bools, and only the interpreter's.
    if let Some(b) = e.test_leaves(&LeafReads::new(host)) {
        assert_eq!(interpreted, Ok(Value::Bool(b)), "{src}: leaves-only path");
    }
}

/// attributegen's path: conditions decided from the leaves alone, falling back to the
/// interpreter on a resolver seeded with what was read, so no attribute is read twice.
#[test]
fn leaves_only_conditions_fall_back_without_reading_again() {
    let host = book_host(); // GET /items
    let test =
        |src: &str, reads: &LeafReads<FakeHost>| Expr::compile(src).unwrap().test_leaves(reads);

    // Decided: a chain of three tests stops at the first false (the third is never read).
    let reads = LeafReads::new(&host);
    host.clear_reads();
    assert_eq!(
        test(
            "request.method == 'GET' && request.url_path == '/other' && request.scheme == 'http'",
            &reads
        ),
        Some(false)
    );
    assert_eq!(
        host.reads(),
        ["property:request.method", "property:request.url_path"]
    );
    // A later condition reuses both reads.
    assert_eq!(
        test(
            "request.url_path == '/items' && request.method != 'POST'",
            &reads
        ),
        Some(true)
    );
    assert_eq!(host.reads().len(), 2);

    // Undecided (an absent attribute): the interpreter reports the error from a resolver that
    // already holds `request.url_path`.
    let src = "request.url_path == '/items' && no_such_attribute == 'x'";
    let reads = LeafReads::new(&host);
    host.clear_reads();
    assert_eq!(test(src, &reads), None);
    let e = Expr::compile(src).unwrap();
    assert!(e.eval(&reads.to_attributes()).is_err());
    assert_eq!(
        host.reads()
            .iter()
            .filter(|r| *r == "property:request.url_path")
            .count(),
        1,
        "{:?}",
        host.reads()
    );

    // More distinct leaves than the reads hold: undecided, and the interpreter agrees with a
    // fresh evaluation.
    let src =
        "request.method == 'GET' && request.url_path == '/items' && request.scheme == 'http' \
               && request.host == 'catalog' && request.path == '/items?x=1'";
    let host = book_host()
        .with_str(&["request", "scheme"], "http")
        .with_str(&["request", "host"], "catalog")
        .with_str(&["request", "path"], "/items?x=1");
    let reads = LeafReads::new(&host);
    assert_eq!(test(src, &reads), None);
    let e = Expr::compile(src).unwrap();
    assert_eq!(e.eval(&reads.to_attributes()), Ok(Value::Bool(true)));
    assert_eq!(e.eval(&Attributes::new(&host)), Ok(Value::Bool(true)));
}

/// Plain names take the direct resolver path; it must agree with the interpreter on values and
/// on success/failure, for leaves, lazy maps, peers, filter state, aliases, misses and types.
#[test]
fn direct_names_agree_with_the_interpreter() {
    let host = book_host()
        .with_str(&["istio_operationId"], "getitems")
        .with_str(&["cluster_name"], "outbound|80||catalog")
        .with_property(
            &["node", "metadata", "LABELS"],
            encode_pairs(&[("app", "webapp"), ("version", "v1")]),
        );
    for src in [
        "request.method",
        "response.code",
        "request",
        "request.headers",
        "upstream_peer",
        "upstream_peer.istio_version",
        "upstream_peer.labels",
        "upstream_peer.no_such_field",
        "downstream_peer.istio_version",
        "istio_operationId",
        "no_such_attribute",
        "xds.cluster_name",
        "node.metadata.MESH_ID",
        "node.metadata.LABELS",
        "node.metadata.NOPE",
        "int",
        "request.method.size",
    ] {
        let e = Expr::compile(src).unwrap();
        assert!(e.name_segs.is_some(), "{src}");
        agrees_with_interpreter(&e, &host, src);
    }
    assert_eq!(
        label("istio_operationId", &host).as_deref(),
        Some("getitems")
    );
    assert!(Expr::compile("has(request.method)")
        .unwrap()
        .name_segs
        .is_none());
    assert!(Expr::compile("request.method + ''")
        .unwrap()
        .name_segs
        .is_none());
}

#[test]
fn the_direct_evaluator_agrees_with_the_interpreter() {
    // Every shape the direct path accepts, over present, absent and wrongly typed attributes
    // (`response.code` is an int, `request.headers` a map, `no_such_attribute` missing): where
    // the direct path answers it must equal the interpreter, and where it gives up the
    // interpreter's answer (or error) is what `eval` returns.
    let host = book_host().with_str(&["istio_operationId"], "getitems");
    let cases = [
        (
            "request.url_path == '/items' && request.method == 'GET'",
            true,
        ),
        (
            "request.url_path == '/items' && request.method == 'POST'",
            true,
        ),
        (
            "request.url_path == '/other' && no_such_attribute == 'x'",
            true,
        ),
        (
            "request.url_path == '/items' && no_such_attribute == 'x'",
            true,
        ),
        ("no_such_attribute == 'x' && false", true),
        ("request.method == 'GET' || no_such_attribute == 'x'", true),
        ("request.method != 'GET' || response.code == 200", true),
        ("!(request.method == 'GET')", true),
        ("request.method.startsWith('GE') ? 1 : 0", true),
        ("request.method.startsWith('PO') ? 1 : 0", true),
        (
            "request.url_path.endsWith('ems') && request.url_path.contains('/it')",
            true,
        ),
        ("response.code == 200", true),
        ("response.code == '200'", true),
        // Literal first, `!=`, a wrongly typed and an absent leaf (the leaf-vs-literal form).
        ("'GET' == request.method", true),
        ("request.method != 'POST'", true),
        ("'200' != response.code", true),
        ("request.referer == 'x'", true),
        ("request.method == 1", true),
        ("request.headers == 'x'", true),
        ("response.code.startsWith('2')", true),
        ("istio_operationId == 'getitems' ? 'yes' : 'no'", true),
        ("request.method + '' == 'GET'", false),
        ("request.headers['x-user'] == 'jason'", false),
        ("request.method.startsWith(request.method)", false),
    ];
    for (src, direct_form) in cases {
        let e = Expr::compile(src).unwrap();
        assert_eq!(e.fast.is_some(), direct_form, "{src}");
        agrees_with_interpreter(&e, &host, src);
    }
    // Hand-derived values for the book host (GET /items, 200), answered by the direct path
    // itself (not by the fallback).
    let eval = |src: &str| {
        let e = Expr::compile(src).unwrap();
        let attrs = Attributes::new(&host);
        let direct = super::fast::eval(e.fast.as_ref().unwrap(), &attrs);
        assert!(direct.is_some(), "{src}: the direct path gave up");
        e.eval(&attrs)
    };
    assert_eq!(
        eval("request.url_path == '/items' && request.method == 'GET'"),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        eval("request.url_path == '/items' && request.method == 'POST'"),
        Ok(Value::Bool(false))
    );
    assert_eq!(
        eval("request.method.startsWith('GET') ? 1 : 0"),
        Ok(Value::Int(1))
    );
}

/// Plain names resolved at compile time (`Direct::Leaf`, `Direct::FilterState`) over odd bytes:
/// a non-UTF-8 string leaf, an int leaf of the wrong width, filter state holding a pairs map,
/// non-UTF-8 bytes, a string with a NUL that is no pairs map, and an absent name. Each must give
/// exactly what the interpreter gives (value, or an error on both sides).
#[test]
fn compile_time_names_agree_with_the_interpreter_on_odd_bytes() {
    let host = FakeHost::new()
        .with_property(&["request", "method"], vec![0x47, 0xff, 0x54])
        .with_property(&["response", "code"], vec![200, 0, 0])
        .with_property(&["fs_pairs"], encode_pairs(&[("k", "v")]))
        .with_property(&["fs_list"], encode_pairs(&[("a", ""), ("b", "")]))
        .with_property(&["fs_bin"], vec![0xff, 0xfe, 0x01])
        .with_property(&["fs_nul"], b"a\0b".to_vec())
        .with_str(&["fs_text"], "getitems");
    for (src, leaf, filter_state) in [
        ("request.method", true, false),
        ("response.code", true, false),
        ("xds.cluster_name", true, false),
        ("fs_pairs", false, true),
        ("fs_list", false, true),
        ("fs_bin", false, true),
        ("fs_nul", false, true),
        ("fs_text", false, true),
        ("fs_absent", false, true),
        // Not filter state: a root, a CEL type name, the peers.
        ("request", false, false),
        ("int", false, false),
        ("upstream_peer", false, false),
    ] {
        let e = Expr::compile(src).unwrap();
        assert_eq!(
            matches!(e.direct, Some(super::Direct::Leaf(_))),
            leaf,
            "{src}"
        );
        assert_eq!(
            matches!(e.direct, Some(super::Direct::FilterState(_))),
            filter_state,
            "{src}"
        );
        let direct = e.eval(&Attributes::new(&host));
        let interpreted = e.eval_interpreted(&Attributes::new(&host));
        assert_eq!(direct, interpreted, "{src}");
    }
    // The lossy decode of a non-UTF-8 string leaf (U+FFFD for 0xff), by hand: "G\u{fffd}T".
    assert_eq!(
        Expr::compile("request.method")
            .unwrap()
            .eval(&Attributes::new(&host)),
        Ok(Value::String(std::sync::Arc::new("G\u{fffd}T".to_string())))
    );
    // An absent filter-state name is read once, even though the interpreter then reports it.
    host.clear_reads();
    let e = Expr::compile("fs_absent").unwrap();
    assert!(e.eval(&Attributes::new(&host)).is_err());
    assert_eq!(host.reads().len(), 1, "{:?}", host.reads());
}

/// More distinct leaves in one request than the memo's first slots hold (4): every value is still
/// the right one, and each is read from the host exactly once (later ones live in the full table).
#[test]
fn many_leaves_in_one_request_are_each_read_once() {
    let names = [
        "path",
        "url_path",
        "host",
        "scheme",
        "method",
        "referer",
        "useragent",
        "id",
        "protocol",
        "query",
        "code_details",
    ];
    let mut host = FakeHost::new();
    for n in names {
        let root = if n == "code_details" {
            "response"
        } else {
            "request"
        };
        host = host.with_str(&[root, n], &format!("v-{n}"));
    }
    let attrs = Attributes::new(&host);
    for _ in 0..2 {
        for n in names {
            let root = if n == "code_details" {
                "response"
            } else {
                "request"
            };
            let e = Expr::compile(&format!("{root}.{n}")).unwrap();
            assert_eq!(
                e.eval(&attrs),
                Ok(Value::String(std::sync::Arc::new(format!("v-{n}")))),
                "{n}"
            );
        }
    }
    assert_eq!(host.reads().len(), names.len(), "{:?}", host.reads());
}

/// `eval_label` (names resolved at compile time, no intermediate CEL value) gives exactly
/// `to_label(eval(..))`, including `None` for failures, over leaves, filter state of every
/// shape, peer fields present/absent/empty, and expressions without a direct form.
#[test]
fn eval_label_equals_the_label_of_eval() {
    let hosts = [
        book_host()
            .with_str(&["istio_operationId"], "getitems")
            .with_property(&["fs_pairs"], encode_pairs(&[("k", "v")]))
            .with_property(&["fs_bin"], vec![0xff, 0xfe])
            .with_property(&["response", "code"], 200i64.to_le_bytes().to_vec()),
        FakeHost::new(),
    ];
    for host in &hosts {
        for src in [
            "request.method",
            "response.code",
            "connection.mtls",
            "istio_operationId",
            "fs_pairs",
            "fs_bin",
            "fs_absent",
            "upstream_peer.istio_version",
            "upstream_peer.name",
            "upstream_peer.cluster_id",
            "upstream_peer.labels",
            "downstream_peer.istio_version",
            "request.method.startsWith('GET') ? 1 : 0",
            "node.metadata['MESH_ID']",
        ] {
            let e = Expr::compile(src).unwrap();
            let expected = e
                .eval(&Attributes::new(host))
                .ok()
                .as_ref()
                .and_then(to_label);
            assert_eq!(e.eval_label(&Attributes::new(host)), expected, "{src}");
        }
    }
    // By hand: the filter state attributegen left for this request.
    let e = Expr::compile("istio_operationId").unwrap();
    assert_eq!(
        e.eval_label(&Attributes::new(&hosts[0])).as_deref(),
        Some("getitems")
    );
}

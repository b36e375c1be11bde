//! The OpenAPI document (`openapi.json`, served at `GET /openapi.json`) against the router and a
//! live stack: every route template is described and every described path is served; every
//! component is used and every example conforms to its schema; every described operation,
//! called without a key and with the owner's key, answers with a described status, content type,
//! body and required headers; a method no path describes answers the described 405.
//!
//! schemathesis checks the document against the live gateway with generated values in CI
//! (`.ci/schemathesis.sh`); the hostile-input suite compares every answer with SPEC.md.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use groups_testkit::{World, spawn_stack};
use regex::Regex;
use reqwest::Method;
use serde_json::Value;

const DOCUMENT: &str = include_str!("../openapi.json");

/// The operations an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The JSON Schema keywords [`conforms`] checks, and those that only document.
#[rustfmt::skip]
const CHECKED_KEYWORDS: [&str; 14] = [
    "type", "enum", "const", "minimum", "maximum", "minLength", "maxLength", "pattern", "items",
    "maxItems", "required", "properties", "additionalProperties", "$ref",
];
const DOCUMENTING_KEYWORDS: [&str; 4] = ["description", "format", "default", "examples"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

/// Follows a local `$ref` (`#/components/...`) until the value is not one.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("not a local $ref: {reference}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("$ref to nothing: {reference}"));
            resolve(doc, target)
        }
        None => value,
    }
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

fn has_type(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "null" => value.is_null(),
        other => panic!("schema type {other} not handled here"),
    }
}

/// Whether `value` conforms to `schema`, for every keyword the document uses (a keyword this
/// does not know fails the test, so the document cannot outgrow the check unnoticed).
fn conforms(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let fail = |why: &str| Err(format!("{value} does not conform to {schema}: {why}"));
    for keyword in schema.as_object().expect("a schema is an object").keys() {
        let known = CHECKED_KEYWORDS.contains(&keyword.as_str())
            || DOCUMENTING_KEYWORDS.contains(&keyword.as_str());
        assert!(known, "schema keyword {keyword} not checked here: {schema}");
    }
    let types: Vec<&str> = match schema.get("type") {
        None => Vec::new(),
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        Some(other) => panic!("a type that is neither a name nor names: {other}"),
    };
    if !types.is_empty() && !types.iter().any(|kind| has_type(kind, value)) {
        return fail("type");
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return fail("enum");
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return fail("const");
    }
    // A number's bounds, and a text's length's.
    let measured = match value {
        Value::Number(number) => number.as_i64().map(|n| (n, ["minimum", "maximum"])),
        Value::String(text) => Some((text.chars().count() as i64, ["minLength", "maxLength"])),
        _ => None,
    };
    if let Some((measure, [least, most])) = measured {
        let bound = |name| {
            schema
                .get(name)
                .map(|b| b.as_i64().expect("an integer bound"))
        };
        if bound(least).is_some_and(|b| measure < b) {
            return fail(least);
        }
        if bound(most).is_some_and(|b| measure > b) {
            return fail(most);
        }
    }
    if let Some(text) = value.as_str()
        && let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
    {
        let regex = Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"));
        if !regex.is_match(text) {
            return fail("pattern");
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(maximum) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > maximum
        {
            return fail("maxItems");
        }
        if let Some(item_schema) = schema.get("items") {
            for item in items {
                conforms(doc, item_schema, item)?;
            }
        }
    }
    let Some(object) = value.as_object() else {
        return Ok(());
    };
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten() {
        let name = name.as_str().expect("required names are strings");
        if !object.contains_key(name) {
            return fail(&format!("{name} missing"));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, item) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(property) => conforms(doc, property, item)?,
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return fail(&format!("{name} not allowed"));
            }
            None => {}
        }
    }
    Ok(())
}

/// Checks every example in `value` against the schema beside it (a media type's or a
/// parameter's) or the schema it belongs to; returns how many it checked.
fn check_examples(doc: &Value, value: &Value) -> usize {
    match value {
        Value::Object(map) => {
            let mut examples: Vec<(&Value, &Value)> = Vec::new();
            if let Some(schema) = map.get("schema") {
                examples.extend(map.get("example").map(|example| (schema, example)));
                let named = map.get("examples").and_then(Value::as_object);
                let named = named.into_iter().flat_map(|named| named.values());
                examples.extend(named.map(|example| (schema, &resolve(doc, example)["value"])));
            }
            if map.contains_key("type")
                && let Some(own) = map.get("examples").and_then(Value::as_array)
            {
                examples.extend(own.iter().map(|example| (value, example)));
            }
            for (schema, example) in &examples {
                conforms(doc, schema, example).unwrap_or_else(|why| panic!("example: {why}"));
            }
            let nested: usize = map.values().map(|v| check_examples(doc, v)).sum();
            examples.len() + nested
        }
        Value::Array(items) => items.iter().map(|v| check_examples(doc, v)).sum(),
        _ => 0,
    }
}

/// Every operation the document describes: its path, the path item, its method and itself.
fn operations(doc: &Value) -> impl Iterator<Item = (&String, &Value, &'static str, &Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths.iter().flat_map(|(path, item)| {
        (METHODS.iter()).filter_map(move |&method| Some((path, item, method, item.get(method)?)))
    })
}

/// `path` with each `{name}` replaced by its parameter's example.
fn with_examples(doc: &Value, path: &str, item: &Value) -> String {
    let mut url = path.to_owned();
    let parameters = item.get("parameters").and_then(Value::as_array);
    for parameter in parameters.into_iter().flatten() {
        let parameter = resolve(doc, parameter);
        if parameter["in"] != "path" {
            continue;
        }
        let name = parameter["name"].as_str().expect("a parameter name");
        let example = match &parameter["example"] {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            other => panic!("{path}: parameter {name} has no usable example: {other}"),
        };
        url = url.replace(&format!("{{{name}}}"), &example);
    }
    assert!(
        !url.contains('{'),
        "{path}: a path parameter without example"
    );
    url
}

/// What a request got.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

/// Sends `method` (as the document spells it: lower case) to `url`, with `key` if given.
async fn send(http: &reqwest::Client, method: &str, url: &str, key: Option<&str>) -> Answer {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
    let mut request = http.request(method, url);
    if let Some(key) = key {
        request = request.header("X-API-KEY", key);
    }
    let response = request.send().await.expect("an answer");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("a body"),
    }
}

/// Asserts that `answer` is one of the responses `operation` describes.
#[track_caller]
fn assert_described(doc: &Value, operation: &Value, answer: &Answer, head: bool, case: &str) {
    let responses = &operation["responses"];
    let response = responses
        .get(answer.status.to_string())
        .map(|r| resolve(doc, r))
        .unwrap_or_else(|| panic!("{case}: status not described: {answer:?}"));
    let content_type = answer
        .headers
        .get("content-type")
        .map(|v| v.to_str().expect("ASCII"));
    match response.get("content").and_then(Value::as_object) {
        Some(content) if content.contains_key("application/json") => {
            assert_eq!(content_type, Some("application/json"), "{case}: {answer:?}");
            if !head {
                let body: Value = serde_json::from_str(&answer.body)
                    .unwrap_or_else(|e| panic!("{case}: body is not JSON ({e}): {answer:?}"));
                let schema = &content["application/json"]["schema"];
                if let Err(why) = conforms(doc, schema, &body) {
                    panic!("{case}: {why}");
                }
            }
        }
        Some(content) => {
            // Another media type (the metrics' text): the answer's, less its parameters.
            let essence = content_type
                .and_then(|t| t.split(';').next())
                .map(str::trim);
            let described = essence.is_some_and(|essence| content.contains_key(essence));
            assert!(described, "{case}: content type not described: {answer:?}");
            assert!(
                head || !answer.body.is_empty(),
                "{case}: no body: {answer:?}"
            );
        }
        None => assert!(answer.body.is_empty(), "{case}: a body: {answer:?}"),
    }
    let headers = response.get("headers").and_then(Value::as_object);
    for (name, header) in headers.into_iter().flatten() {
        let header = resolve(doc, header);
        let value = answer.headers.get(name.as_str());
        if header["required"] != Value::Bool(true) {
            continue;
        }
        let value = value
            .unwrap_or_else(|| panic!("{case}: no {name}: {answer:?}"))
            .to_str()
            .expect("ASCII");
        // A number if it reads as one, else text.
        let value = value
            .parse::<i64>()
            .map_or_else(|_| Value::from(value), Value::from);
        if let Err(why) = conforms(doc, &header["schema"], &value) {
            panic!("{case}: header {name}: {why}");
        }
    }
}

#[test]
fn the_document_describes_exactly_the_routes_of_the_router() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let described: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let served: BTreeSet<&str> = groups_gateway::routes().collect();
    assert_eq!(described, served);
    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        resolve(&doc, &serde_json::json!({ "$ref": reference }));
    }
}

#[test]
fn every_component_is_used_and_every_example_conforms() {
    let doc = document();
    let mut found = Vec::new();
    references(&doc, &mut found);
    let paths = serde_json::to_string(&doc["paths"]).expect("JSON");
    for (kind, components) in doc["components"].as_object().expect("components") {
        for name in components.as_object().expect("a component map").keys() {
            let used = if kind == "securitySchemes" {
                paths.contains(&format!("{{\"{name}\":[]}}"))
            } else {
                found.contains(&format!("#/components/{kind}/{name}"))
            };
            assert!(used, "components/{kind}/{name} is used nowhere");
        }
    }
    // The objects' examples, the error bodies' and the parameters'.
    let checked = check_examples(&doc, &doc);
    assert!(checked >= 20, "only {checked} examples");
}

#[tokio::test]
async fn every_described_operation_answers_as_described_without_a_key() {
    let world = World::new();
    let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let http = reqwest::Client::new();
    let doc = document();
    let before = world.counts();

    // Served as written.
    let served = send(&http, "get", &format!("{}/openapi.json", stack.url()), None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, DOCUMENT);

    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let url = format!("{}{}", stack.url(), with_examples(&doc, path, item));
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let answer = send(&http, method, &url, None).await;
            let case = format!("{} {path}", method.to_uppercase());
            assert!(
                !(answer.status == 404 && answer.body == r#"{"detail":"Not found"}"#),
                "{case} is not served: {answer:?}"
            );
            assert_described(&doc, operation, &answer, method == "head", &case);
            checked += 1;
        }
        // A method the path does not describe: the 405 its operations describe.
        let undescribed = ["put", "patch", "post", "get"]
            .into_iter()
            .find(|m| item.get(m).is_none())
            .expect("a method not described");
        let answer = send(&http, undescribed, &url, None).await;
        let case = format!("{undescribed} {path}");
        assert_eq!(answer.status, 405, "{case}: {answer:?}");
        let described = METHODS.iter().find_map(|m| item.get(*m));
        let described = described.expect("an operation");
        assert_described(&doc, described, &answer, false, &case);
        checked += 1;
    }
    let paths = doc["paths"].as_object().expect("paths").len();
    assert!(checked > 2 * paths, "{checked} checks for {paths} paths");
    assert_eq!(
        world.counts(),
        before,
        "a request without a key changed rows"
    );
}

#[tokio::test]
async fn every_described_operation_answers_as_described_with_the_owner_s_key() {
    let world = World::new();
    let (group, user) = (world.demo.group, world.demo.user);
    // The document's examples name them: instance "demo", ids 1.
    assert_eq!((group.get(), user.get()), (1, 1));
    let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let http = reqwest::Client::new();
    let doc = document();
    let key = Some(world.demo.owner.key.as_str());
    let before = world.counts();
    // Every GET is to answer 200, /readyz too: once the server has seen its database answer.
    let ready = format!("{}/readyz", stack.url());
    let deadline = Instant::now() + Duration::from_secs(20);
    while send(&http, "get", &ready, None).await.status != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut removals = 0;
    for (path, item, method, operation) in operations(&doc) {
        let url = format!("{}{}", stack.url(), with_examples(&doc, path, item));
        // Each removal, from either side, finds the membership to remove.
        if method == "delete" && !world.is_member(group, user) {
            world.add_member("demo", group, user);
        }
        let answer = send(&http, method, &url, key).await;
        let case = format!("{} {path}", method.to_uppercase());
        let success = match method {
            "delete" | "options" => 204,
            _ => 200,
        };
        assert_eq!(answer.status, success, "{case}: {answer:?}");
        assert_described(&doc, operation, &answer, method == "head", &case);
        if method == "delete" {
            assert!(!world.is_member(group, user), "{case} removed nothing");
            removals += 1;
        }
    }
    assert_eq!(removals, 8, "two removal routes, four paths each");

    // The trail lists every removal; a page of one leads to the next, as described.
    let list = "/v1.1/instances/{instance}/audit/memberships/";
    let operation = &doc["paths"][list]["get"];
    let list = format!("{}/v1.1/instances/demo/audit/memberships/", stack.url());
    let read = |url: String| {
        let http = &http;
        let doc = &doc;
        async move {
            let answer = send(http, "get", &url, key).await;
            assert_eq!(answer.status, 200, "{url}: {answer:?}");
            assert_described(doc, operation, &answer, false, &url);
            serde_json::from_str::<Value>(&answer.body).expect("JSON")
        }
    };
    let whole = read(format!("{list}?page_size=100")).await;
    assert_eq!(whole["objects"].as_array().map(Vec::len), Some(removals));
    assert_eq!(whole["next"], Value::Null);
    let first = read(format!("{list}?page_size=1&group=1&user=1")).await;
    let next = first["next"].as_str().expect("a next page");
    let second = read(format!("{}{next}", stack.url())).await;
    assert_eq!(first["objects"][0], whole["objects"][0]);
    assert_eq!(second["objects"][0], whole["objects"][1]);

    // Only the removals changed rows: the last one's membership is gone.
    let after = world.counts();
    assert_eq!(
        (after.users, after.groups, after.memberships),
        (before.users, before.groups, before.memberships - 1)
    );
}

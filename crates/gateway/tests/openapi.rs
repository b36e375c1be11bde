//! The OpenAPI document (`openapi.json`, served at `GET /openapi.json`) against the router and a
//! live stack: every route template is described and every described path is served; every
//! described operation, called without a key, answers with a described status, content type,
//! body and required headers; a method no path describes answers the described 405.
//!
//! The document's `pattern`s are not checked here (no regex engine among our dependencies):
//! schemathesis checks the whole schema against the live gateway in CI (`.ci/schemathesis.sh`).

use std::collections::BTreeSet;

use groups_testkit::{World, spawn_stack};
use reqwest::Method;
use serde_json::Value;

const DOCUMENT: &str = include_str!("../openapi.json");

/// The operations an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

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

/// The JSON Schema keywords the document uses, but `pattern`.
fn conforms(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let fail = |why: &str| Err(format!("{value} does not conform to {schema}: {why}"));
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let right = match kind {
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            other => panic!("schema type {other} not handled here"),
        };
        if !right {
            return fail("type");
        }
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
    if let Some(minimum) = schema.get("minimum").and_then(Value::as_i64)
        && value.as_i64().is_some_and(|v| v < minimum)
    {
        return fail("minimum");
    }
    let Some(object) = value.as_object() else {
        return Ok(());
    };
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
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

/// What a request without a key got.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(http: &reqwest::Client, method: Method, url: &str) -> Answer {
    let response = http.request(method, url).send().await.expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("a body");
    Answer {
        status,
        headers,
        body,
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
        if let Ok(number) = value.parse::<i64>() {
            let number = Value::from(number);
            if let Err(why) = conforms(doc, &header["schema"], &number) {
                panic!("{case}: header {name}: {why}");
            }
        } else if let Err(why) = conforms(doc, &header["schema"], &Value::from(value)) {
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

#[tokio::test]
async fn every_described_operation_answers_as_described_without_a_key() {
    let world = World::new();
    let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let http = reqwest::Client::new();
    let doc = document();
    let before = world.counts();

    // Served as written.
    let served = send(&http, Method::GET, &format!("{}/openapi.json", stack.url())).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, DOCUMENT);

    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let url = format!("{}{}", stack.url(), with_examples(&doc, path, item));
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let http_method =
                Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let answer = send(&http, http_method, &url).await;
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
        let answer = send(
            &http,
            Method::from_bytes(undescribed.to_uppercase().as_bytes()).expect("a method"),
            &url,
        )
        .await;
        assert_eq!(answer.status, 405, "{undescribed} {path}: {answer:?}");
        let described = METHODS
            .iter()
            .find_map(|m| item.get(*m))
            .expect("an operation");
        assert_described(
            &doc,
            described,
            &answer,
            false,
            &format!("{undescribed} {path}"),
        );
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

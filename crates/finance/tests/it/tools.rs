//! The registry: every tool has a schema the model can use, and runs through the same entry point.

use finance::tools;
use serde_json::json;

#[test]
fn every_tool_has_a_name_description_and_object_schema() {
    let names: Vec<&str> = tools::registry().iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "liquidity",
            "rates",
            "portfolio",
            "allocate",
            "suitability",
            "loan",
            "rating",
            "lender_stats",
            "calc",
            "ratios"
        ]
    );
    for tool in tools::registry() {
        let schema = (tool.schema)();
        assert_eq!(schema["type"], "object", "{}", tool.name);
        assert!(schema["properties"].is_object(), "{}", tool.name);
        assert!(tool.description.len() > 40, "{}", tool.name);
        assert!(tool.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", tool.name);
    }
    let functions = tools::openai_functions();
    assert_eq!(functions.as_array().unwrap().len(), names.len());
    assert_eq!(functions[0]["type"], "function");
    assert_eq!(functions[0]["function"]["name"], "liquidity");
}

#[test]
fn run_dispatches_by_name_and_rejects_unknown_tools() {
    let out = tools::run("calc", json!({"expression": "1+1"})).unwrap();
    assert_eq!(out["result"], "2");
    let err = tools::run("nope", json!({})).unwrap_err();
    assert!(err.to_string().contains("unknown tool \"nope\""), "{err}");
    assert_eq!(types::ErrorCode::error_code(&err), types::Code::InvalidParameter);
    let err = tools::run("liquidity", json!({"csv": "\"unterminated"})).unwrap_err();
    assert!(matches!(
        types::ErrorCode::error_code(&err),
        types::Code::UnsupportedFormat | types::Code::InvalidParameter
    ));
}

#[test]
fn every_schema_lists_only_fields_the_tool_accepts() {
    // A tool must accept every property its schema advertises (deny_unknown_fields would reject a stale one).
    for tool in tools::registry() {
        let schema = (tool.schema)();
        for field in schema["properties"].as_object().unwrap().keys() {
            if let Err(err) = (tool.run)(json!({ field: null })) {
                assert!(
                    !err.to_string().contains("unknown field"),
                    "{}: {field}: {err}",
                    tool.name
                );
            }
        }
    }
}

//! Every value of a valid config replaced, one at a time, by each value that has broken loaders
//! (`1e308`, `.inf`, `-1`, a list, a bad URL…): the config is refused with a located error, or it
//! loads and the live state (which turns seconds into durations, prices into costs) builds
//! without a panic. Exhaustive over positions × values, so it is deterministic.

use std::collections::BTreeMap;
use std::path::Path;

use tollgate_core::config::{ConfigError, parse};
use tollgate_gateway::LiveState;

const VALID: &str = r#"model_list:
  - model_name: a
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: http://127.0.0.1:9/v1
      api_key: sk-ds
      timeout: 600
      stream_timeout: 60
      rpm: 60
      tpm: 1000
      weight: 1
      input_cost_per_token: 0.0000002
      output_cost_per_token: 0.0000004
      max_input_tokens: 1000
    model_info: {id: a-1, base_model: deepseek/deepseek-v3.2, max_output_tokens: 100}
  - model_name: b
    litellm_params: {model: gemini/gemini-2.5-flash, api_key: k, timeout: 5}
litellm_settings:
  request_timeout: 30
  num_retries: 2
  cache: true
  cache_params: {type: local, ttl: 60, max_size_in_memory: 10}
router_settings:
  cooldown_time: 5
  retry_after: 1
  allowed_fails: 2
  max_fallbacks: 3
  fallbacks: [{a: [b]}]
workflows:
  w:
    steps:
      - {role: planner, model: a, timeout: 30, max_tokens: 10, temperature: 0.2}
      - {role: coder, model: b}
general_settings:
  master_key: sk-0123456789abcdef0123
  max_request_size_mb: 1
"#;

const NASTY: &[&str] = &[
    "1e308",
    "-1e308",
    ".inf",
    "-.inf",
    ".nan",
    "-1",
    "0",
    "0.0000000001",
    "18446744073709551616",
    "''",
    "~",
    "[]",
    "{}",
    "'ht!tp://bad url'",
    "true",
];

#[test]
fn any_value_replaced_loads_and_builds_or_is_refused_where_written() {
    let env: BTreeMap<String, String> = BTreeMap::new();
    let path = Path::new("config.yaml");
    assert!(LiveState::build(parse(VALID, path, &env).unwrap(), 1, None, &env).is_ok());
    let positions: Vec<usize> = VALID.match_indices(": ").map(|(i, _)| i + 2).collect();
    let mut refused = 0;
    for &start in &positions {
        let end = VALID[start..]
            .find(['\n', ',', '}', ']'])
            .map_or(VALID.len(), |j| start + j);
        for nasty in NASTY {
            let text = format!("{}{nasty}{}", &VALID[..start], &VALID[end..]);
            match parse(&text, path, &env) {
                // Building must not panic; it may refuse (an unknown provider, say).
                Ok(c) => {
                    let _ = LiveState::build(c, 1, None, &env);
                }
                Err(ConfigError::Invalid {
                    line, path, message, ..
                }) => {
                    refused += 1;
                    assert!(line.is_some(), "{path}: {message} has no line in:\n{text}");
                }
                Err(ConfigError::Syntax { line, .. }) => assert!(line >= 1, "{text}"),
                Err(other) => panic!("{other}\n{text}"),
            }
        }
    }
    // The nasty values are refused for most numeric keys; this guards against a check that
    // silently stopped running.
    assert!(refused > positions.len(), "only {refused} refusals");
}

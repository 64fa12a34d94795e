//! Embeddings: small deterministic unit vectors, one per input.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fingerprint::Fingerprint;

/// Default vector length: enough to tell inputs apart, small enough to keep responses tiny.
const DEFAULT_DIMENSIONS: usize = 8;
/// Clients may ask for more with `dimensions`; beyond this the mock would only burn bandwidth.
const MAX_DIMENSIONS: usize = 4096;

#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingRequest {
    pub model: String,
    /// A string, an array of strings, an array of token ids, or an array of those arrays.
    pub input: Value,
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<usize>,
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Value,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// One input's text for hashing and its token count. Token-id arrays count one token per id,
/// text one per four characters (at least one), as the chat side does.
fn inputs(input: &Value) -> Result<Vec<(String, u64)>, String> {
    let one = |v: &Value| -> Option<(String, u64)> {
        match v {
            Value::String(s) => Some((s.clone(), (s.chars().count() as u64 / 4).max(1))),
            Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_u64) => {
                Some((v.to_string(), ids.len() as u64))
            }
            _ => None,
        }
    };
    let list = match input {
        Value::Array(items) if items.iter().all(|i| i.is_string() || i.is_array()) && !items.is_empty() => {
            items.iter().map(one).collect::<Option<Vec<_>>>()
        }
        Value::Array(items) if !items.is_empty() => one(input).map(|x| vec![x]),
        other => one(other).map(|x| vec![x]),
    };
    list.ok_or_else(|| "`input` must be a string, an array of strings, or token ids".to_string())
}

fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dimensions)
        .map(|i| {
            let mut fp = Fingerprint::default();
            fp.field(text).add(&(i as u64).to_le_bytes());
            // Map the hash to [-1, 1).
            (fp.value() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The response body, or a message for a 400.
pub(crate) fn render(req: &EmbeddingRequest) -> Result<Vec<u8>, String> {
    let inputs = inputs(&req.input)?;
    let dimensions = req.dimensions.unwrap_or(DEFAULT_DIMENSIONS).clamp(1, MAX_DIMENSIONS);
    // The official openai Python SDK asks for base64 by default and decodes it itself.
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let mut tokens = 0;
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, (text, n))| {
            tokens += n;
            let v = vector(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(encode_base64(&bytes))
            } else {
                Value::from(v)
            };
            Embedding {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let body = EmbeddingList {
        object: "list",
        data,
        model: &req.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// Standard base64 with padding (RFC 4648), as OpenAI encodes embeddings.
fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        let a = vector("hello", 8);
        assert_eq!(a, vector("hello", 8));
        assert_ne!(a, vector("hellp", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn input_shapes() {
        assert_eq!(inputs(&serde_json::json!("abcdefgh")).unwrap().len(), 1);
        assert_eq!(inputs(&serde_json::json!(["a", "b"])).unwrap().len(), 2);
        assert_eq!(
            inputs(&serde_json::json!([1, 2, 3])).unwrap(),
            vec![("[1,2,3]".to_string(), 3)]
        );
        assert_eq!(inputs(&serde_json::json!([[1, 2], [3]])).unwrap().len(), 2);
        assert!(inputs(&serde_json::json!(5)).is_err());
        assert!(inputs(&serde_json::json!([])).is_err());
    }
}

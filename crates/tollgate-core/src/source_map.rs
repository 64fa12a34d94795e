//! Where each node of a config file sits, by the YAML paths config messages use
//! (`model_list[2].litellm_params.api_base`), so a semantic error can say `file:line:column`.
//!
//! The tree the config is read from (`serde_norway` into JSON values) keeps no positions, and it
//! silently keeps the last of two equal keys. A second pass over the parser's events (with
//! `yaml-rust2`, whose events carry their marks) records a position per path and refuses a key
//! written twice in one mapping: that is how a second `model_list:` used to replace the first
//! without a word.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A place in a file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A key written twice in the same mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    pub path: String,
    /// The second occurrence (the one that would silently win).
    pub at: Position,
    pub first: Position,
}

/// YAML path → position: of the value for scalars (where `1e308` is written), of the key for
/// mappings and lists (where the section starts).
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    positions: HashMap<String, Position>,
}

impl SourceMap {
    /// Maps `text`. Text the event parser cannot read gives an empty map: the YAML reader has
    /// already reported real syntax errors, and a config without positions still loads.
    pub fn build(text: &str) -> Result<SourceMap, DuplicateKey> {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut b, false).is_err() {
            return Ok(SourceMap::default());
        }
        match b.duplicate {
            Some(d) => Err(d),
            None => Ok(SourceMap { positions: b.positions }),
        }
    }

    pub fn get(&self, path: &str) -> Option<Position> {
        self.positions.get(path).copied()
    }

    /// The position of `path`, or of the nearest enclosing node that exists (a missing key is
    /// reported where its mapping is).
    pub fn nearest(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.get(p) {
                return Some(pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// True when nothing was mapped (empty text, or text only the YAML reader accepts).
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Number of items of the list at `path` (0 when absent).
    pub fn list_len(&self, path: &str) -> usize {
        (0..)
            .take_while(|i| self.positions.contains_key(&format!("{path}[{i}]")))
            .count()
    }
}

/// Where text that the YAML reader refused without a position goes wrong: the event parser's
/// own error, else the start of a second document (the reader takes one document only).
pub fn trouble_spot(text: &str) -> Option<Position> {
    #[derive(Default)]
    struct Documents {
        seen: usize,
        second: Option<Position>,
    }
    impl MarkedEventReceiver for Documents {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if ev == Event::DocumentStart {
                self.seen += 1;
                if self.seen == 2 && self.second.is_none() {
                    self.second = Some(position(mark));
                }
            }
        }
    }
    let mut d = Documents::default();
    match Parser::new_from_str(text).load(&mut d, true) {
        Err(e) => Some(position(*e.marker())),
        Ok(()) => d.second,
    }
}

/// The marker's line is counted from 1 and its column from 0.
fn position(mark: Marker) -> Position {
    Position {
        line: mark.line().max(1),
        column: mark.col() + 1,
    }
}

enum Frame {
    Mapping {
        path: String,
        keys: HashMap<String, Position>,
        /// `None`: the next node is a key; `Some(child)`: it is the value at path `child`
        /// (`None` inside for a key that has no path, such as an alias or a complex key).
        value_of: Option<Option<String>>,
    },
    Sequence {
        path: String,
        next: usize,
    },
    /// Inside a complex key: nothing here has a path.
    Skip,
}

#[derive(Default)]
struct Builder {
    frames: Vec<Frame>,
    positions: HashMap<String, Position>,
    duplicate: Option<DuplicateKey>,
}

enum Node {
    Scalar(String),
    Alias,
    Mapping,
    Sequence,
}

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    fn node(&mut self, node: Node, pos: Position) {
        let is_container = matches!(node, Node::Mapping | Node::Sequence);
        // The path of this node, when it is a value or a list item (keys record themselves).
        let mut path: Option<String> = None;
        let mut skip = false;
        match self.frames.last_mut() {
            None => path = Some(String::new()),
            Some(Frame::Skip) => skip = true,
            Some(Frame::Sequence { path: p, next }) => {
                let c = format!("{p}[{next}]");
                *next += 1;
                self.positions.insert(c.clone(), pos);
                path = Some(c);
            }
            Some(Frame::Mapping {
                path: p,
                keys,
                value_of,
            }) => match value_of.take() {
                Some(value_path) => {
                    if let (Some(c), Node::Scalar(_)) = (&value_path, &node) {
                        self.positions.insert(c.clone(), pos);
                    }
                    path = value_path;
                }
                None => {
                    // This node is a key.
                    match &node {
                        Node::Scalar(k) => {
                            let c = child(p, k);
                            if let Some(first) = keys.get(k) {
                                if self.duplicate.is_none() {
                                    self.duplicate = Some(DuplicateKey {
                                        path: c.clone(),
                                        at: pos,
                                        first: *first,
                                    });
                                }
                            } else {
                                keys.insert(k.clone(), pos);
                            }
                            self.positions.insert(c.clone(), pos);
                            *value_of = Some(Some(c));
                        }
                        Node::Alias => *value_of = Some(None),
                        Node::Mapping | Node::Sequence => {
                            *value_of = Some(None);
                            skip = true;
                        }
                    }
                }
            },
        }
        if !is_container {
            return;
        }
        let frame = match (skip, path, node) {
            (true, _, _) | (false, None, _) => Frame::Skip,
            (false, Some(path), Node::Mapping) => Frame::Mapping {
                path,
                keys: HashMap::new(),
                value_of: None,
            },
            (false, Some(path), _) => Frame::Sequence { path, next: 0 },
        };
        self.frames.push(frame);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = position(mark);
        match ev {
            Event::Scalar(s, ..) => self.node(Node::Scalar(s), pos),
            Event::Alias(_) => self.node(Node::Alias, pos),
            Event::MappingStart(..) => self.node(Node::Mapping, pos),
            Event::SequenceStart(..) => self.node(Node::Sequence, pos),
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_base: 'ht!tp://bad url'\nrouter_settings: {cooldown_time: 1e308}\n";

    #[test]
    fn paths_point_at_values_and_sections() {
        let m = SourceMap::build(TEXT).unwrap();
        assert_eq!(m.get("model_list"), Some(Position { line: 1, column: 1 }));
        assert_eq!(
            m.get("model_list[0].litellm_params.api_base"),
            Some(Position { line: 5, column: 17 })
        );
        assert_eq!(
            m.get("router_settings.cooldown_time"),
            Some(Position { line: 6, column: 34 })
        );
        assert_eq!(
            m.nearest("model_list[0].litellm_params.missing"),
            Some(Position { line: 3, column: 5 })
        );
        assert_eq!(m.list_len("model_list"), 1);
        assert_eq!(m.nearest("elsewhere"), None);
    }

    #[test]
    fn a_key_written_twice_is_refused_with_both_places() {
        let d = SourceMap::build("model_list: []\ngeneral_settings: {}\nmodel_list:\n  - x\n").unwrap_err();
        assert_eq!(d.path, "model_list");
        assert_eq!(d.at, Position { line: 3, column: 1 });
        assert_eq!(d.first, Position { line: 1, column: 1 });
        let d = SourceMap::build("a:\n  b: 1\n  c: {d: 1, d: 2}\n").unwrap_err();
        assert_eq!(d.path, "a.c.d");
        // The same key in different mappings is fine.
        assert!(SourceMap::build("- {a: 1}\n- {a: 2}\n").is_ok());
    }

    #[test]
    fn complex_keys_and_aliases_do_not_confuse_paths() {
        let m = SourceMap::build("? [x, y]\n: {z: 1}\nbase: &b {k: 1}\nother: *b\nlast: {k: 2}\n").unwrap();
        assert_eq!(m.get("last.k"), Some(Position { line: 5, column: 11 }));
        assert_eq!(m.get("base.k"), Some(Position { line: 3, column: 14 }));
    }
}

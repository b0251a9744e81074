//! Byte-level BPE (GPT-2 style) as llama.cpp runs it: words from the pre-tokenizer are mapped byte by byte to
//! printable characters, then adjacent symbols are merged by merge rank until no ranked pair is left.
//!
//! The merge loop mirrors llama.cpp's (lowest rank first, leftmost first on ties, stale pairs skipped), so the
//! ids agree with llama.cpp and with Hugging Face `tokenizers` on the same vocabulary.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// GPT-2's reversible map from bytes to printable characters (`bytes_to_unicode`).
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(byte)
        } else {
            extra += 1;
            255 + extra
        };
        table[usize::from(byte)] = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    table
}

/// The inverse of [`byte_to_char_table`].
pub(crate) fn char_to_byte_map() -> HashMap<char, u8> {
    byte_to_char_table().iter().enumerate().map(|(byte, &c)| (c, byte as u8)).collect()
}

/// Decodes a byte-level token string to the bytes it stands for; characters outside the table (text of added
/// tokens) keep their own UTF-8 bytes.
pub(crate) fn byte_level_decode(text: &str, map: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match map.get(&c) {
            Some(&byte) => out.push(byte),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// A candidate merge in the queue: (rank, left index, right index, left symbol, right symbol), smallest first.
type QueueEntry = Reverse<(u32, usize, usize, u32, u32)>;

/// Merge ranks over interned symbol strings.
#[derive(Debug)]
pub(crate) struct BpeMerges {
    /// Every string that occurs as a side or result of a merge, interned.
    symbols: HashMap<String, u32>,
    /// (left, right) → (rank, merged symbol).
    ranks: HashMap<(u32, u32), (u32, u32)>,
}

impl BpeMerges {
    /// Builds the rank table from GGUF `tokenizer.ggml.merges` lines ("left right", rank = line number).
    pub(crate) fn new<'a>(merges: impl IntoIterator<Item = &'a str>) -> Self {
        let mut table = Self { symbols: HashMap::new(), ranks: HashMap::new() };
        for (rank, line) in merges.into_iter().enumerate() {
            // llama.cpp splits at the first space after the first byte, so a merge may start with a space.
            let Some(pos) = line.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (left, right) = (&line[..pos], &line[pos + 1..]);
            let left_id = table.intern(left);
            let right_id = table.intern(right);
            let merged_id = table.intern(&format!("{left}{right}"));
            table.ranks.entry((left_id, right_id)).or_insert((rank as u32, merged_id));
        }
        table
    }

    fn intern(&mut self, text: &str) -> u32 {
        let next = self.symbols.len() as u32;
        *self.symbols.entry(text.to_owned()).or_insert(next)
    }

    /// Splits one byte-level word into the substrings BPE ends with.
    pub(crate) fn merge_word<'w>(&self, word: &'w str) -> Vec<&'w str> {
        #[derive(Clone, Copy)]
        struct Symbol {
            start: usize,
            end: usize,
            id: Option<u32>,
            prev: Option<usize>,
            next: Option<usize>,
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        for (i, (start, c)) in word.char_indices().enumerate() {
            let end = start + c.len_utf8();
            symbols.push(Symbol {
                start,
                end,
                id: self.symbols.get(&word[start..end]).copied(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        // Queue entries: lowest rank first, then leftmost; the ids let stale entries be recognised.
        let mut queue: BinaryHeap<QueueEntry> = BinaryHeap::new();
        let push = |queue: &mut BinaryHeap<_>, symbols: &[Symbol], left: usize, right: usize| {
            if let (Some(l), Some(r)) = (symbols[left].id, symbols[right].id)
                && let Some(&(rank, _)) = self.ranks.get(&(l, r))
            {
                queue.push(Reverse((rank, left, right, l, r)));
            }
        };
        for i in 1..symbols.len() {
            push(&mut queue, &symbols, i - 1, i);
        }
        while let Some(Reverse((_, left, right, l, r))) = queue.pop() {
            let (ls, rs) = (symbols[left], symbols[right]);
            if ls.start == ls.end || rs.start == rs.end || ls.id != Some(l) || rs.id != Some(r) {
                continue;
            }
            let Some(&(_, merged)) = self.ranks.get(&(l, r)) else { continue };
            symbols[left].end = rs.end;
            symbols[left].id = Some(merged);
            symbols[left].next = rs.next;
            symbols[right].end = symbols[right].start;
            if let Some(n) = rs.next {
                symbols[n].prev = Some(left);
            }
            if let Some(p) = symbols[left].prev {
                push(&mut queue, &symbols, p, left);
            }
            if let Some(n) = symbols[left].next {
                push(&mut queue, &symbols, left, n);
            }
        }
        symbols.iter().filter(|s| s.end > s.start).map(|s| &word[s.start..s.end]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_round_trips() {
        let table = byte_to_char_table();
        let map = char_to_byte_map();
        assert_eq!(map.len(), 256);
        assert_eq!(table[usize::from(b' ')], 'Ġ');
        assert_eq!(table[usize::from(b'\n')], 'Ċ');
        let all: String = table.iter().collect();
        assert_eq!(byte_level_decode(&all, &map), (0..=255u8).collect::<Vec<_>>());
    }

    #[test]
    fn merges_by_rank() {
        let merges = BpeMerges::new(["a b", "b c", "ab c"]);
        assert_eq!(merges.merge_word("abc"), ["abc"]);
        assert_eq!(merges.merge_word("bca"), ["bc", "a"]);
        assert_eq!(merges.merge_word("xab"), ["x", "ab"]);
    }
}

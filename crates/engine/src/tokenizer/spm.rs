//! SentencePiece BPE as stored in GGUF (`tokenizer.ggml.model = "llama"`): no merge list, only a score per
//! token. llama.cpp starts from single characters and repeatedly merges the adjacent pair whose concatenation is
//! the vocabulary token with the highest score; characters that never form a token fall back to byte tokens
//! `<0xNN>`. This reproduces that algorithm (and therefore SentencePiece's own output for Llama 2 vocabularies).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// One candidate merge: higher score first, then the leftmost pair.
#[derive(Debug, PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Splits `text` (spaces already replaced by `▁`) into the pieces the SPM merge loop ends with; the caller maps
/// each piece to a token or to byte tokens.
pub(crate) fn merge<'t>(
    text: &'t str,
    token_to_id: &HashMap<String, u32>,
    scores: &[f32],
) -> Vec<&'t str> {
    #[derive(Clone, Copy)]
    struct Symbol {
        start: usize,
        len: usize,
        prev: Option<usize>,
        next: Option<usize>,
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: None });
        if i > 0 {
            symbols[i - 1].next = Some(i);
        }
    }
    let mut queue = BinaryHeap::new();
    let try_add =
        |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: usize, right: usize| {
            let start = symbols[left].start;
            let size = symbols[left].len + symbols[right].len;
            let Some(&id) = token_to_id.get(&text[start..start + size]) else { return };
            let Some(&score) = scores.get(id as usize) else { return };
            queue.push(Bigram { score, left, right, size });
        };
    for i in 1..symbols.len() {
        try_add(&mut queue, &symbols, i - 1, i);
    }
    while let Some(bigram) = queue.pop() {
        let (left, right) = (symbols[bigram.left], symbols[bigram.right]);
        if left.len == 0 || right.len == 0 || left.len + right.len != bigram.size {
            continue;
        }
        symbols[bigram.left].len += right.len;
        symbols[bigram.right].len = 0;
        symbols[bigram.left].next = right.next;
        if let Some(n) = right.next {
            symbols[n].prev = Some(bigram.left);
        }
        if let Some(p) = left.prev {
            try_add(&mut queue, &symbols, p, bigram.left);
        }
        if let Some(n) = right.next {
            try_add(&mut queue, &symbols, bigram.left, n);
        }
    }
    symbols.iter().filter(|s| s.len > 0).map(|s| &text[s.start..s.start + s.len]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_score_merges_first() {
        let vocab: HashMap<String, u32> = [("ab", 0), ("bc", 1), ("abcd", 2)]
            .into_iter()
            .map(|(t, i)| (t.to_owned(), i))
            .collect();
        assert_eq!(merge("abc", &vocab, &[-2.0, -1.0, 0.0]), ["a", "bc"]);
        assert_eq!(merge("abc", &vocab, &[-1.0, -2.0, 0.0]), ["ab", "c"]);
        // Multi-byte characters stay whole when nothing merges them.
        assert_eq!(merge("▁é", &vocab, &[0.0; 3]), ["▁", "é"]);
    }
}

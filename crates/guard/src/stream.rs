//! Streaming moderation: feed an answer as it is generated, judge it at each sentence end or every N
//! characters, and stop the stream the moment it turns unsafe, replacing the rest with a safe message.

use crate::{Guard, Judgement, Policy, Verdict, guard::Direction};

/// What to do with the stream after a chunk.
#[derive(Debug, Clone)]
pub enum StreamDecision {
    /// Keep streaming.
    Continue,
    /// Stop now: send `replacement` instead of anything further.
    Stop {
        /// The judgement that stopped it.
        judgement: Box<Judgement>,
        /// The message that replaces the rest of the answer.
        replacement: String,
    },
}

/// Judges a growing answer incrementally.
#[derive(Debug)]
pub struct StreamModerator<'g> {
    guard: &'g Guard,
    policy: &'g Policy,
    text: String,
    judged_chars: usize,
    every_chars: usize,
    stopped: bool,
}

/// Most trailing characters judged at each step (earlier text was judged already).
const TAIL_CHARS: usize = 2000;

impl<'g> StreamModerator<'g> {
    /// A moderator that judges at each sentence end and at least every `every_chars` characters.
    pub fn new(guard: &'g Guard, policy: &'g Policy, every_chars: usize) -> Self {
        StreamModerator {
            guard,
            policy,
            text: String::new(),
            judged_chars: 0,
            every_chars: every_chars.max(1),
            stopped: false,
        }
    }

    /// Adds a chunk (a token or a few) and says whether to go on.
    pub fn push(&mut self, chunk: &str) -> StreamDecision {
        if self.stopped {
            return StreamDecision::Continue;
        }
        self.text.push_str(chunk);
        let chars = self.text.chars().count();
        let sentence_end = chunk.contains(['。', '！', '？', '.', '!', '?', '\n', '；']);
        if sentence_end || chars - self.judged_chars >= self.every_chars {
            self.judged_chars = chars;
            return self.judge();
        }
        StreamDecision::Continue
    }

    /// Judges whatever is left at the end of the stream.
    pub fn finish(&mut self) -> StreamDecision {
        if self.stopped || self.judged_chars == self.text.chars().count() {
            return StreamDecision::Continue;
        }
        self.judged_chars = self.text.chars().count();
        self.judge()
    }

    /// The text received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn judge(&mut self) -> StreamDecision {
        let skip = self.text.chars().count().saturating_sub(TAIL_CHARS);
        let tail: String = self.text.chars().skip(skip).collect();
        let judgement = self.guard.judge(&tail, Direction::Output, self.policy);
        if judgement.verdict == Verdict::Unsafe && !self.policy.shadow {
            self.stopped = true;
            return StreamDecision::Stop {
                judgement: Box::new(judgement),
                replacement: self.policy.templates.stream_stop.clone(),
            };
        }
        StreamDecision::Continue
    }
}

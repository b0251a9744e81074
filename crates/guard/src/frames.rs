//! Question frames and their conjunction with lexicon topics. A linear n-gram model scores "冰毒" and
//! "哪里买" separately, so a topic word that is common in exam and compliance questions drags a short
//! request down with it ("冰毒哪里买"), and a legal question is pulled up by the crime it names
//! ("内幕交易一般判几年"). Tokens such as `req:drugs` (a request frame and a drugs topic in one text)
//! and `law:drugs` (a legal, protective or explanatory frame with the same topic) give every head the
//! conjunction directly, shared across the terms of a topic.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

use crate::lexicon::{Hit, Label};

/// Phrases that ask for something to be done or supplied (lower-case, normalised text).
const REQUEST: &[&str] = &[
    "怎么",
    "怎样",
    "如何",
    "教我",
    "教教我",
    "告诉我",
    "哪里买",
    "哪里能",
    "哪里可以",
    "哪里有",
    "哪儿",
    "在哪",
    "帮我",
    "给我",
    "写一",
    "写个",
    "编一",
    "编个",
    "生成",
    "有没有办法",
    "什么办法",
    "方法",
    "步骤",
    "渠道",
    "不被发现",
    "不被查",
    "不被抓",
    "不留痕迹",
    "发点",
    "来点",
    "推荐几个",
    "提供",
    "how to",
    "how do i",
    "how can i",
    "how would i",
    "where can i",
    "where to",
    "help me",
    "write a",
    "write me",
    "give me",
    "tell me how",
    "show me",
    "teach me",
    "step by step",
    "without getting caught",
    "without being caught",
    "send me",
    "find me",
    "教程",
    "做法",
    "制作",
    "制造",
    "自制",
    "配方",
    "攻略",
    "tutorial",
    "recipe",
    "instructions",
    "guide to",
];

/// Phrases that ask about the law, protection, consequences or reasons.
const LAWFUL: &[&str] = &[
    "判几年",
    "判多少",
    "处罚",
    "量刑",
    "违法吗",
    "犯法吗",
    "合法吗",
    "犯罪吗",
    "算不算",
    "防范",
    "识别",
    "怎么办",
    "举报",
    "报警",
    "维权",
    "投诉",
    "责任",
    "后果",
    "风险",
    "为什么",
    "是不是",
    "危害",
    "影响",
    "预防",
    "保护",
    "区别",
    "定义",
    "是什么",
    "合规",
    "培训",
    "考试",
    "监管",
    "被骗",
    "受害",
    "penalt",
    "illegal",
    "is it legal",
    "sentence",
    "report",
    "protect",
    "prevent",
    "warning sign",
    "signs of",
    "why do",
    "why is",
    "why are",
    "what is",
    "what are",
    "risks of",
    "consequence",
    "how to spot",
    "how to recognize",
    "how do i know",
    "victim",
    "compliance",
    "regulat",
];

/// Phrases that ask to stay hidden from the people or systems that would stop the act ("不被追查",
/// "躲审核", "without getting caught"). Shared across topics, so a new crime phrased with a familiar
/// evasion still carries the signal; protective questions ("怎么才不会被骗") do not use these forms.
const EVASION: &[&str] = &[
    "不被发现",
    "不被查",
    "不被抓",
    "不被追",
    "不被识别",
    "不被系统",
    "不被平台",
    "不被封",
    "不被举报",
    "不被警",
    "不被监管",
    "不被人发现",
    "不会被发现",
    "不会被查",
    "不会被抓",
    "不会被追",
    "躲审核",
    "躲过审核",
    "躲过检查",
    "躲过安检",
    "躲开警察",
    "躲开监控",
    "绕过审核",
    "绕过监管",
    "绕过风控",
    "绕过安检",
    "规避监管",
    "规避审查",
    "逃避监管",
    "逃避追查",
    "逃过检查",
    "瞒过",
    "不让警察",
    "不让银行",
    "不让家长",
    "不让爸妈",
    "不告诉爸妈",
    "不告诉家长",
    "查不到是我",
    "追查不到",
    "追踪不到",
    "不留痕迹",
    "不留证据",
    "神不知鬼不觉",
    "不露馅",
    "混过去",
    "蒙混过关",
    "without getting caught",
    "without being caught",
    "without anyone knowing",
    "without them knowing",
    "without her knowing",
    "without his knowing",
    "without my parents",
    "avoid detection",
    "evade detection",
    "undetected",
    "untraceable",
    "can't be traced",
    "cannot be traced",
    "won't be traced",
    "without a trace",
    "without leaving a trace",
    "under the radar",
    "so no one finds out",
    "so nobody finds out",
    "slip past",
    "get past security",
    "bypass moderation",
    "bypass the filter",
];

fn automaton(
    cell: &'static OnceLock<Option<AhoCorasick>>,
    terms: &[&str],
) -> Option<&'static AhoCorasick> {
    cell.get_or_init(|| AhoCorasick::new(terms).ok()).as_ref()
}

/// Whether `text` holds a request frame and whether it holds a lawful frame.
pub fn frames(text: &str) -> (bool, bool) {
    static REQ: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    static LAW: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    let request = automaton(&REQ, REQUEST).is_some_and(|a| a.is_match(text));
    let lawful = automaton(&LAW, LAWFUL).is_some_and(|a| a.is_match(text));
    (request, lawful)
}

/// Whether `text` asks to stay hidden while doing something ([`EVASION`]).
pub fn evasion(text: &str) -> bool {
    static EVADE: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    automaton(&EVADE, EVASION).is_some_and(|a| a.is_match(text))
}

/// Conjunction tokens of a text's `frame` ([`frames`]: request, lawful) and of its evasion frame
/// (`evading`, [`evasion`]) with the intents of its lexicon `hits` (each once), plus `evade:frame` alone.
pub fn conjunctions<'a>(
    frame: (bool, bool),
    evading: bool,
    hits: impl Iterator<Item = &'a Hit>,
) -> Vec<String> {
    let mut intents: Vec<&str> = hits
        .filter_map(|h| match &h.label {
            Label::Intent(i) => Some(i.as_str()),
            Label::Technique(_) => None,
        })
        .collect();
    // The evasion frame counts on its own too: "怎么约几个人揍他一顿还不被追责" names no lexicon topic.
    let mut out = if evading { vec!["evade:frame".to_owned()] } else { Vec::new() };
    if intents.is_empty() {
        return out;
    }
    intents.sort_unstable();
    intents.dedup();
    let (request, lawful) = frame;
    // A protective or legal frame wins over the "how do I" inside it: "怎么识别电信诈骗" asks how to
    // recognise a fraud, not how to commit one.
    for (on, prefix) in [(request && !lawful, "req"), (lawful, "law"), (evading, "evade")] {
        if on {
            out.extend(intents.iter().map(|i| format!("{prefix}:{i}")));
            out.push(format!("{prefix}:any"));
        }
    }
    out
}

//! The risk library: leaf risks under the guard's taxonomy (8 categories → the 31 risks of
//! TC260-003 → leaves), each with seed attack goals in Chinese and English.

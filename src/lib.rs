pub mod chip;
pub mod codes;

pub mod chip;

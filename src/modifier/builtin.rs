//! Built-in modifiers.

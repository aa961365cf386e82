//! Modifiers: per-link transformations run in the sender's process before each send.
//!
//! A modifier receives each sample and returns the sample to send, or `None` to drop it
//! (for example `Mean` sends one sample every `n`). Modifiers of a link run in order; their
//! state lives in the sending Block's process.

use crate::{Label, Sample};

mod builtin;
pub use builtin::*;

/// A per-link transformation. See the [module docs](self).
pub trait Modifier: Send + 'static {
    /// Transforms one sample; `None` drops it.
    fn apply(&mut self, sample: Sample) -> Option<Sample>;

    /// A short name for messages and the metadata file.
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base).to_owned()
    }

    /// The labels after this modifier, given the labels before it, checked before anything
    /// is forked. An `Err` says what is wrong (for example a label the modifier needs that
    /// never comes).
    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        Ok(input.to_vec())
    }
}

/// A modifier made of a closure (labels are not checked).
///
/// ```
/// use crabby::modifier::{from_fn, Modifier};
/// use crabby::Sample;
/// let mut double = from_fn(|mut s: Sample| {
///     let f = s.get_f64("F(N)")?;
///     s.insert("F(N)", 2.0 * f);
///     Some(s)
/// });
/// let out = double.apply(Sample::new().with("F(N)", 2.0)).unwrap();
/// assert_eq!(out.get_f64("F(N)"), Some(4.0));
/// ```
pub fn from_fn<F>(f: F) -> FnModifier<F>
where
    F: FnMut(Sample) -> Option<Sample> + Send + 'static,
{
    FnModifier(f)
}

/// See [`from_fn`].
pub struct FnModifier<F>(F);

impl<F> std::fmt::Debug for FnModifier<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnModifier")
    }
}

impl<F> Modifier for FnModifier<F>
where
    F: FnMut(Sample) -> Option<Sample> + Send + 'static,
{
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        (self.0)(sample)
    }
    fn name(&self) -> String {
        "closure".to_owned()
    }
}

//! Splitting a big decode over the machine's cores. Loading one aggregate
//! is a single caller, and decoding its events costs far more than reading
//! them, so a large page is decoded as two halves on two threads. The
//! threads are rayon's long-lived pool: a thread started per call would
//! start with a cold allocator heap and fault in fresh pages for every page
//! of events it decodes.

use crate::Result;

/// Items a job must have before it is split.
pub const SPLIT_MIN: usize = 1024;

/// `f` over `items`, in two halves on two threads when the job is big
/// enough and there are two cores; the results keep the items' order.
pub fn in_halves<T: Send, R: Send>(mut items: Vec<T>, f: impl Fn(Vec<T>) -> Result<Vec<R>> + Sync) -> Result<Vec<R>> {
    if items.len() < SPLIT_MIN || rayon::current_num_threads() < 2 {
        return f(items);
    }
    let second = items.split_off(items.len() / 2);
    let (first, second) = rayon::join(|| f(items), || f(second));
    let mut out = first?;
    out.extend(second?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_keep_order_and_pass_errors_on() {
        let items: Vec<u32> = (0..5000).collect();
        let doubled = in_halves(items.clone(), |part| Ok(part.into_iter().map(|x| x * 2).collect())).expect("map");
        assert_eq!(doubled, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let failed =
            in_halves(
                items,
                |part| {
                    if part.contains(&4999) { Err(crate::Error::Codec("bad item".into())) } else { Ok(part) }
                },
            );
        assert!(matches!(failed, Err(crate::Error::Codec(m)) if m == "bad item"));
    }
}

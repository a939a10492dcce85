//! Splitting a big decode over the machine's cores. Loading one aggregate
//! is a single caller, and decoding its events costs far more than reading
//! them, so a large page is decoded as two halves on two threads. The
//! threads are rayon's long-lived pool: a thread started per call would
//! start with a cold allocator heap and fault in fresh pages for every page
//! of events it decodes.

use crate::Result;

/// Items a job must have before it is split.
pub const SPLIT_MIN: usize = 1024;

/// `f` over each of `items`, results in the items' order, on every core
/// when there are enough items: a projection decodes the events of a batch
/// this way (each independent of the others) before it applies them in order.
pub fn map_each<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    if items.len() < SPLIT_MIN || rayon::current_num_threads() < 2 {
        return items.iter().map(f).collect();
    }
    items.par_iter().with_min_len(SPLIT_MIN / 4).map(f).collect()
}

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
    fn map_each_keeps_order_small_and_large() {
        for n in [0, 10, SPLIT_MIN, 10 * SPLIT_MIN + 7] {
            let items: Vec<u64> = (0..n as u64).collect();
            assert_eq!(map_each(&items, |x| x * 3), items.iter().map(|x| x * 3).collect::<Vec<_>>());
        }
    }

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

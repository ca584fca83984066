//! [`ClockRing`]: the CLOCK hand's ring of the RCU store — items in the
//! order they were stored, as a doubly linked list in a slab, so that an
//! item that is replaced or deleted leaves it at once (O(1), by the slot
//! index the item carries) instead of waiting as garbage for a compaction
//! pass. Such a pass scanned every entry under the ring's lock: with
//! 10,000 keys and 10 % sets it ran every second or so and held the lock,
//! and the request that triggered it, for over a millisecond.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// No slot: the item is not in the ring (also the list's end marker).
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// What the ring holds: something that keeps the index of its slot (written
/// only by the ring, under the ring's owner's lock).
pub(crate) trait Slotted {
    /// The item's slot in the ring, [`NO_SLOT`] when it is in none.
    fn slot(&self) -> &AtomicU32;
}

struct Node<T> {
    item: Option<Arc<T>>,
    prev: u32,
    next: u32,
}

/// A FIFO of `Arc<T>` with removal of any member by its slot. The front is
/// where the CLOCK hand is; new items go to the back. Its memory is that
/// of the most items it ever held (slots are reused, not returned).
pub(crate) struct ClockRing<T: Slotted> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    len: usize,
}

impl<T: Slotted> Default for ClockRing<T> {
    fn default() -> Self {
        ClockRing {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NO_SLOT,
            tail: NO_SLOT,
            len: 0,
        }
    }
}

impl<T: Slotted> ClockRing<T> {
    /// How many items the ring holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `item` at the back. An item already in a ring stays where
    /// it is.
    pub(crate) fn push_back(&mut self, item: Arc<T>) {
        if item.slot().load(Relaxed) != NO_SLOT {
            return;
        }
        let node = Node {
            item: None,
            prev: self.tail,
            next: NO_SLOT,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                // More than u32::MAX - 1 items cannot be stored in the
                // memory of one machine of this kind (each is > 48 bytes).
                let i = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&i| i != NO_SLOT)
                    .expect("the CLOCK ring holds fewer than 2^32 - 1 items");
                self.nodes.push(node);
                i
            }
        };
        item.slot().store(i, Relaxed);
        self.nodes[i as usize].item = Some(item);
        match self.tail {
            NO_SLOT => self.head = i,
            t => self.nodes[t as usize].next = i,
        }
        self.tail = i;
        self.len += 1;
    }

    /// The item at the front (the hand), if any.
    pub(crate) fn front(&self) -> Option<&Arc<T>> {
        match self.head {
            NO_SLOT => None,
            h => self.nodes[h as usize].item.as_ref(),
        }
    }

    /// Takes the item at the front.
    pub(crate) fn pop_front(&mut self) -> Option<Arc<T>> {
        match self.head {
            NO_SLOT => None,
            h => self.unlink(h),
        }
    }

    /// Moves the front item to the back (the hand passes it).
    pub(crate) fn rotate(&mut self) {
        if let Some(item) = self.pop_front() {
            self.push_back(item);
        }
    }

    /// Takes `item` out of the ring, wherever it is; whether it was there.
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        let i = item.slot().load(Relaxed);
        if i == NO_SLOT {
            return false;
        }
        let ours = self
            .nodes
            .get(i as usize)
            .and_then(|n| n.item.as_ref())
            .is_some_and(|held| core::ptr::eq(Arc::as_ptr(held), item));
        ours && self.unlink(i).is_some()
    }

    /// Takes every item, front first.
    pub(crate) fn take_all(&mut self) -> Vec<Arc<T>> {
        let mut all = Vec::with_capacity(self.len);
        while let Some(item) = self.pop_front() {
            all.push(item);
        }
        all
    }

    /// Visits the items front to back.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        let mut at = self.head;
        core::iter::from_fn(move || {
            let node = self.nodes.get(at as usize)?;
            at = node.next;
            node.item.as_ref()
        })
    }

    fn unlink(&mut self, i: u32) -> Option<Arc<T>> {
        let node = &mut self.nodes[i as usize];
        let item = node.item.take()?;
        let (prev, next) = (node.prev, node.next);
        match prev {
            NO_SLOT => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NO_SLOT => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        self.free.push(i);
        self.len -= 1;
        item.slot().store(NO_SLOT, Relaxed);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct It(u32, AtomicU32);

    impl Slotted for It {
        fn slot(&self) -> &AtomicU32 {
            &self.1
        }
    }

    fn it(n: u32) -> Arc<It> {
        Arc::new(It(n, AtomicU32::new(NO_SLOT)))
    }

    fn order(r: &ClockRing<It>) -> Vec<u32> {
        r.iter().map(|i| i.0).collect()
    }

    #[test]
    fn fifo_order_removal_anywhere_and_rotation() {
        let mut r = ClockRing::default();
        let items: Vec<_> = (0..5).map(it).collect();
        for i in &items {
            r.push_back(i.clone());
        }
        assert_eq!(order(&r), [0, 1, 2, 3, 4]);
        assert!(r.remove(&items[2]));
        assert!(!r.remove(&items[2]), "removed twice");
        assert!(r.remove(&items[4]));
        assert!(r.remove(&items[0]));
        assert_eq!(order(&r), [1, 3]);
        assert_eq!(r.len(), 2);
        r.rotate();
        assert_eq!(order(&r), [3, 1]);
        // Freed slots are reused; the order stays the order of pushes.
        r.push_back(items[0].clone());
        r.push_back(items[0].clone()); // already in: stays once
        assert_eq!(order(&r), [3, 1, 0]);
        assert_eq!(r.nodes.len(), 5);
        assert_eq!(r.pop_front().unwrap().0, 3);
        assert_eq!(r.front().unwrap().0, 1);
        assert_eq!(r.take_all().iter().map(|i| i.0).collect::<Vec<_>>(), [1, 0]);
        assert_eq!((r.len(), r.front().is_none()), (0, true));
        assert!(items.iter().all(|i| i.1.load(Relaxed) == NO_SLOT));
    }

    #[test]
    fn an_item_of_another_ring_is_not_removed_by_its_slot() {
        let (mut a, mut b) = (ClockRing::default(), ClockRing::default());
        let (x, y) = (it(1), it(2));
        a.push_back(x.clone());
        b.push_back(y.clone());
        // Both sit in slot 0 of their rings.
        assert!(!a.remove(&y));
        assert_eq!(order(&a), [1]);
        assert!(b.remove(&y));
    }

    #[test]
    fn many_items_in_and_out_keep_the_links_consistent() {
        let mut r = ClockRing::default();
        let items: Vec<_> = (0..1000).map(it).collect();
        let mut model = alloc::collections::VecDeque::new();
        let mut state = 12345u64;
        for step in 0..20_000u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (state >> 33) as usize % items.len();
            match step % 3 {
                0 | 1 if !model.contains(&(k as u32)) => {
                    r.push_back(items[k].clone());
                    model.push_back(k as u32);
                }
                0 => {
                    r.rotate();
                    let f = model.pop_front().unwrap();
                    model.push_back(f);
                }
                _ => {
                    let was = model.iter().position(|&m| m == k as u32);
                    assert_eq!(r.remove(&items[k]), was.is_some());
                    if let Some(p) = was {
                        model.remove(p);
                    }
                }
            }
            assert_eq!(r.len(), model.len());
        }
        assert_eq!(order(&r), model.into_iter().collect::<Vec<_>>());
    }
}

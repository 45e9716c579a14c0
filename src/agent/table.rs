//! [`Table`]: a table whose capacity is fixed when it is made, reserved once and never grown.
//!
//! A heapless table inside the [`super::Agent`] is part of the agent's own bytes, and the agent is
//! built once and moved into its box: every page of every table is written then, used or not
//! (64 watched children are 25 KiB of keeper state on a box that keeps three). A `Table`
//! reserves its capacity in one allocation at start instead, whose pages the kernel hands out only
//! as entries are written; a push beyond the capacity is refused, never a reallocation.
//!
//! ```
//! use swandog::agent::table::Table;
//!
//! let mut t = Table::with_capacity(2);
//! assert!(t.push(1).is_ok() && t.push(2).is_ok());
//! assert_eq!(t.push(3), Err(3), "full: refused, not grown");
//! assert_eq!(&t[..], &[1, 2]);
//! ```

use core::ops::{Deref, DerefMut};

/// A table of at most `capacity()` entries; see the module documentation.
#[derive(Debug)]
pub struct Table<T> {
    items: std::vec::Vec<T>,
    capacity: usize,
}

impl<T> Table<T> {
    /// An empty table that will hold at most `capacity` entries (reserved now, in one piece).
    pub fn with_capacity(capacity: usize) -> Table<T> {
        Table {
            items: std::vec::Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends `item`, or hands it back when the table is full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.items.len() >= self.capacity {
            return Err(item);
        }
        self.items.push(item);
        Ok(())
    }

    /// Whether a push would be refused.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.capacity
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Removes every entry (the reservation stays).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Keeps the entries for which `keep` says so.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }

    /// Removes and returns entry `i`, shifting the rest down.
    pub fn remove(&mut self, i: usize) -> T {
        self.items.remove(i)
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table::with_capacity(0)
    }
}

impl<T: Clone> Clone for Table<T> {
    fn clone(&self) -> Self {
        let mut copy = Table::with_capacity(self.capacity);
        copy.items.extend(self.items.iter().cloned());
        copy
    }
}

impl<T> Deref for Table<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}

impl<'a, T> IntoIterator for &'a Table<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut Table<T> {
    type Item = &'a mut T;
    type IntoIter = core::slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_and_never_reallocates() {
        let mut t = Table::with_capacity(3);
        let start = t.items.as_ptr();
        for i in 0..3 {
            assert!(t.push(i).is_ok());
        }
        assert!(t.is_full());
        assert_eq!(t.push(9), Err(9));
        assert_eq!(t.items.as_ptr(), start, "the reservation is where it was");
        t.retain(|&x| x != 1);
        assert_eq!(&t[..], &[0, 2]);
        let c = t.clone();
        assert_eq!(c.capacity(), 3);
        assert_eq!(
            c.items.capacity(),
            3,
            "a clone reserves the whole capacity too"
        );
    }
}

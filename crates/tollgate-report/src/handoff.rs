//! Records from the reading thread to the aggregating one, in batches. One channel operation per
//! record cost more than parsing the record: `perf record` on `tollgate report` over a 1,000,000
//! record store showed a quarter of the time in the channel's lock and the wake-ups it causes
//! (`SyncWaker::register` → `Mutex::lock_contended`, `finish_task_switch`). A batch of
//! [`BATCH`] makes that cost vanish; the channel still holds a bounded number of batches, so
//! memory stays bounded whatever the input's size.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use tollgate_core::Record;

/// Records per batch.
pub const BATCH: usize = 512;
/// Batches the channel holds before the reader waits.
const IN_FLIGHT: usize = 8;

/// The reading side: collects records and sends them a batch at a time.
pub struct Sender {
    tx: SyncSender<Vec<Record>>,
    batch: Vec<Record>,
}

/// A batched channel: the reading side and the records as the aggregating side sees them.
pub fn channel() -> (Sender, impl Iterator<Item = Record>) {
    let (tx, rx): (SyncSender<Vec<Record>>, Receiver<Vec<Record>>) = sync_channel(IN_FLIGHT);
    let sender = Sender {
        tx,
        batch: Vec::with_capacity(BATCH),
    };
    (sender, rx.into_iter().flatten())
}

impl Sender {
    /// Adds a record; false once the aggregating side is gone (stop reading).
    pub fn push(&mut self, r: Record) -> bool {
        self.batch.push(r);
        self.batch.len() < BATCH || self.flush()
    }

    /// Sends what is collected; false once the aggregating side is gone.
    pub fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send(full).is_ok()
    }
}

impl Drop for Sender {
    /// The last, partial batch goes when the reader is done, however it ends.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_arrives_in_order_across_batches() {
        let (mut tx, rx) = channel();
        let n = BATCH * 3 + 7;
        let reader = std::thread::spawn(move || {
            for i in 0..n {
                let r = Record {
                    request_id: i.to_string(),
                    ..Record::default()
                };
                assert!(tx.push(r));
            }
            // Dropping the sender sends the last 7.
        });
        let ids: Vec<String> = rx.map(|r| r.request_id).collect();
        reader.join().unwrap();
        assert_eq!(ids.len(), n);
        assert!(ids.iter().enumerate().all(|(i, id)| *id == i.to_string()));
    }

    #[test]
    fn a_gone_receiver_stops_the_reader() {
        let (mut tx, rx) = channel();
        drop(rx);
        let mut pushed = 0;
        while tx.push(Record::default()) {
            pushed += 1;
        }
        assert_eq!(pushed, BATCH - 1, "the first full batch finds nobody");
    }
}

//! What the plugin writes to Envoy, behind a trait so the logic runs natively against a fake.
//! Reads go through `proxy_attributes::host::Host`.

/// Writes and metrics (`proxy_set_property`, `proxy_define_metric`, `proxy_increment_metric`).
pub trait Output {
    /// `proxy_set_property(path, value)`: Envoy stores it in filter state `wasm.<path>`.
    /// `false` when the host refused (e.g. read-only state); never panics.
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool;
    /// `proxy_define_metric(Counter, name)`; `None` if the host refused.
    fn define_counter(&self, name: &str) -> Option<u32>;
    /// `proxy_increment_metric(id, delta)`.
    fn increment_counter(&self, id: u32, delta: i64);
}

/// A recording [`Output`] for tests (native and in the harness's unit tests).
#[derive(Default, Debug)]
pub struct FakeOutput {
    pub properties: std::cell::RefCell<Vec<(String, Vec<u8>)>>,
    pub counters: std::cell::RefCell<Vec<(String, i64)>>,
}

impl FakeOutput {
    /// The last value written to `name` (filter state `wasm.<name>`), as text.
    pub fn property(&self, name: &str) -> Option<String> {
        self.properties
            .borrow()
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn counter(&self, name: &str) -> i64 {
        self.counters
            .borrow()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    }
}

impl Output for FakeOutput {
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
        self.properties
            .borrow_mut()
            .push((path.join("."), value.to_vec()));
        true
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut c = self.counters.borrow_mut();
        if let Some(i) = c.iter().position(|(k, _)| k == name) {
            return u32::try_from(i).ok();
        }
        c.push((name.to_string(), 0));
        u32::try_from(c.len() - 1).ok()
    }

    fn increment_counter(&self, id: u32, delta: i64) {
        if let Some(entry) = self.counters.borrow_mut().get_mut(id as usize) {
            entry.1 += delta;
        }
    }
}

//! The categories a deployment accepts: the six built-in ones, and any an
//! operator adds in the settings, each with its own retention and whether
//! it counts toward the unread badges.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Category, Channels};

use crate::error::{CoreError, Result};

/// How one category is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorySpec {
    pub category: Category,
    /// Messages of this category expire this long after they were sent
    /// (sooner if they carry an earlier `expires_at`); `None`: only the
    /// stream's retention applies.
    pub max_age: Option<Duration>,
    /// Counted in `unread_total` and `unseen_total`. Its own unread number
    /// is listed either way.
    pub badge: bool,
    /// What a user who set nothing for this category gets (settings
    /// `categories.<name>.in_app` / `.fallback`; both on unless set).
    pub defaults: Channels,
    /// An unread message of this category raises its receiver's fallback
    /// webhook this long after it was stored (settings
    /// `categories.<name>.fallback_after_secs`); `None`: no fallback.
    pub fallback_after: Option<Duration>,
}

impl CategorySpec {
    pub fn new(category: Category) -> Self {
        CategorySpec {
            category,
            max_age: None,
            badge: true,
            defaults: Channels::default(),
            fallback_after: None,
        }
    }
}

/// The configured categories, cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categories(Arc<Inner>);

#[derive(Debug, PartialEq, Eq)]
struct Inner {
    specs: Vec<CategorySpec>,
    /// Each category's name as a JSON object key with its colon
    /// (`"remind":`), escaped once here, so that a connection writes its
    /// `counts` frame without serialising the names again per delivery.
    json_keys: Vec<String>,
}

impl Default for Categories {
    fn default() -> Self {
        Categories::new(Vec::new())
    }
}

impl Categories {
    /// The built-in six, each replaced by a spec of the same name in
    /// `specs`, then the other specs in their order.
    pub fn new(specs: Vec<CategorySpec>) -> Self {
        let mut all: Vec<CategorySpec> = Category::BUILTIN
            .iter()
            .map(|c| CategorySpec::new(c.clone()))
            .collect();
        for spec in specs {
            match all.iter_mut().find(|s| s.category == spec.category) {
                Some(existing) => *existing = spec,
                None => all.push(spec),
            }
        }
        let json_keys = all
            .iter()
            .map(|s| {
                let mut key = serde_json::to_string(s.category.as_str()).expect("a string");
                key.push(':');
                key
            })
            .collect();
        Categories(Arc::new(Inner {
            specs: all,
            json_keys,
        }))
    }

    /// The JSON object keys of the categories, in [`Categories::iter`]'s
    /// order, each with its colon.
    pub fn json_keys(&self) -> &[String] {
        &self.0.json_keys
    }

    /// The spec of the category named `name`, or an `invalid` error that
    /// lists the accepted names.
    pub fn get(&self, name: &str) -> Result<&CategorySpec> {
        self.iter()
            .find(|s| s.category.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.iter().map(|s| s.category.as_str()).collect();
                CoreError::Invalid(format!(
                    "category: unknown category {name:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = &CategorySpec> {
        self.0.specs.iter()
    }

    pub fn len(&self) -> usize {
        self.0.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.specs.is_empty()
    }

    /// Where `category` is in [`Categories::iter`]'s order.
    pub fn position(&self, category: &Category) -> Option<usize> {
        self.0.specs.iter().position(|s| &s.category == category)
    }

    /// The spec at `position`.
    pub fn at(&self, position: usize) -> &CategorySpec {
        &self.0.specs[position]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_add_and_override_categories() {
        let promo: Category = "promo".parse().unwrap();
        let categories = Categories::new(vec![
            CategorySpec {
                category: promo.clone(),
                max_age: Some(Duration::from_secs(60)),
                badge: false,
                defaults: Default::default(),
                fallback_after: None,
            },
            CategorySpec {
                category: Category::SYSTEM,
                max_age: Some(Duration::from_secs(5)),
                badge: true,
                defaults: Default::default(),
                fallback_after: None,
            },
        ]);
        assert_eq!(categories.iter().count(), 7);
        assert!(!categories.get("promo").unwrap().badge);
        assert_eq!(
            categories.get("system").unwrap().max_age,
            Some(Duration::from_secs(5))
        );
        let err = categories.get("nope").unwrap_err().to_string();
        assert!(
            err.contains("unknown category \"nope\"") && err.contains("promo"),
            "{err}"
        );
    }
}

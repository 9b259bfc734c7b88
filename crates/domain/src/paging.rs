//! Which page of a listing: [`Page`] and [`PerPage`].

/// Why a number is not a [`Page`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be at least 1")]
pub struct PageError;

/// A page number, from 1.
///
/// ```
/// use authd_domain::Page;
///
/// assert_eq!(Page::new(3).unwrap().get(), 3);
/// assert!(Page::new(0).is_err());
/// assert_eq!(Page::default().get(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Page(u32);

impl Page {
    /// The page `number`, refused when it is 0.
    pub fn new(number: u32) -> Result<Self, PageError> {
        if number == 0 {
            Err(PageError)
        } else {
            Ok(Self(number))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The first page.
impl Default for Page {
    fn default() -> Self {
        Self(1)
    }
}

/// Why a number is not a [`PerPage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1 and {max}", max = PerPage::MAX)]
pub struct PerPageError;

/// How many items a page holds: 1 to [`PerPage::MAX`], [`PerPage::DEFAULT`] when not asked.
///
/// ```
/// use authd_domain::PerPage;
///
/// assert_eq!(PerPage::new(100).unwrap().get(), 100);
/// assert!(PerPage::new(0).is_err());
/// assert!(PerPage::new(101).is_err());
/// assert_eq!(PerPage::default().get(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PerPage(u32);

impl PerPage {
    /// The most items a page may hold.
    pub const MAX: u32 = 100;
    /// The size of a page when the client does not say.
    pub const DEFAULT: u32 = 20;

    /// A page of `size` items, refused outside 1 to [`Self::MAX`].
    pub fn new(size: u32) -> Result<Self, PerPageError> {
        if (1..=Self::MAX).contains(&size) {
            Ok(Self(size))
        } else {
            Err(PerPageError)
        }
    }

    /// The size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// [`PerPage::DEFAULT`] items.
impl Default for PerPage {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_are_inclusive() {
        assert!(Page::new(1).is_ok() && Page::new(u32::MAX).is_ok());
        assert!(PerPage::new(1).is_ok() && PerPage::new(100).is_ok());
        assert_eq!(PerPage::new(101), Err(PerPageError));
        assert_eq!(PerPageError.to_string(), "must be between 1 and 100");
    }
}

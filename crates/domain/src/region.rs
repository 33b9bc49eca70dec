//! Region binding (绑定限制区域, China Mobile only): province codes such as
//! `240_辽宁省`. The number is China Mobile's province code (the provincial
//! capital's long-distance code). Xinjiang, Tibet and Inner Mongolia may not be
//! bound.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// One row of the province table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Province {
    pub code: u16,
    pub name: &'static str,
    /// `false` for the provinces that may not be bound.
    pub bindable: bool,
}

/// The 31 mainland provinces, autonomous regions and municipalities.
pub const PROVINCES: &[Province] = &[
    Province {
        code: 100,
        name: "北京市",
        bindable: true,
    },
    Province {
        code: 200,
        name: "广东省",
        bindable: true,
    },
    Province {
        code: 210,
        name: "上海市",
        bindable: true,
    },
    Province {
        code: 220,
        name: "天津市",
        bindable: true,
    },
    Province {
        code: 230,
        name: "重庆市",
        bindable: true,
    },
    Province {
        code: 240,
        name: "辽宁省",
        bindable: true,
    },
    Province {
        code: 250,
        name: "江苏省",
        bindable: true,
    },
    Province {
        code: 270,
        name: "湖北省",
        bindable: true,
    },
    Province {
        code: 280,
        name: "四川省",
        bindable: true,
    },
    Province {
        code: 290,
        name: "陕西省",
        bindable: true,
    },
    Province {
        code: 311,
        name: "河北省",
        bindable: true,
    },
    Province {
        code: 351,
        name: "山西省",
        bindable: true,
    },
    Province {
        code: 371,
        name: "河南省",
        bindable: true,
    },
    Province {
        code: 431,
        name: "吉林省",
        bindable: true,
    },
    Province {
        code: 451,
        name: "黑龙江省",
        bindable: true,
    },
    Province {
        code: 471,
        name: "内蒙古自治区",
        bindable: false,
    },
    Province {
        code: 531,
        name: "山东省",
        bindable: true,
    },
    Province {
        code: 551,
        name: "安徽省",
        bindable: true,
    },
    Province {
        code: 571,
        name: "浙江省",
        bindable: true,
    },
    Province {
        code: 591,
        name: "福建省",
        bindable: true,
    },
    Province {
        code: 731,
        name: "湖南省",
        bindable: true,
    },
    Province {
        code: 771,
        name: "广西壮族自治区",
        bindable: true,
    },
    Province {
        code: 791,
        name: "江西省",
        bindable: true,
    },
    Province {
        code: 851,
        name: "贵州省",
        bindable: true,
    },
    Province {
        code: 871,
        name: "云南省",
        bindable: true,
    },
    Province {
        code: 891,
        name: "西藏自治区",
        bindable: false,
    },
    Province {
        code: 898,
        name: "海南省",
        bindable: true,
    },
    Province {
        code: 931,
        name: "甘肃省",
        bindable: true,
    },
    Province {
        code: 951,
        name: "宁夏回族自治区",
        bindable: true,
    },
    Province {
        code: 971,
        name: "青海省",
        bindable: true,
    },
    Province {
        code: 991,
        name: "新疆维吾尔自治区",
        bindable: false,
    },
];

/// A known province code (bindable or not: [`Region::bindable`] says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(u16);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegionError {
    #[error("region must look like 240_辽宁省 or 240, got {0:?}")]
    Format(String),
    #[error("unknown province code {0}")]
    Unknown(u16),
    #[error("province code {0} does not match name {1:?}")]
    NameMismatch(u16, String),
}

impl Region {
    /// Parse `240_辽宁省` or `240`. When a name is given it must match the code.
    pub fn parse(s: &str) -> Result<Region, RegionError> {
        let t = s.trim();
        let (code_s, name) = match t.split_once('_') {
            Some((c, n)) => (c, Some(n)),
            None => (t, None),
        };
        if code_s.is_empty() || code_s.len() > 3 || !code_s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::Format(t.to_owned()));
        }
        let code: u16 = code_s
            .parse()
            .map_err(|_| RegionError::Format(t.to_owned()))?;
        let p = PROVINCES
            .iter()
            .find(|p| p.code == code)
            .ok_or(RegionError::Unknown(code))?;
        if let Some(n) = name
            && n != p.name
        {
            return Err(RegionError::NameMismatch(code, n.to_owned()));
        }
        Ok(Region(code))
    }

    fn province(self) -> &'static Province {
        PROVINCES
            .iter()
            .find(|p| p.code == self.0)
            .expect("Region holds only known codes")
    }

    pub fn code(self) -> u16 {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.province().name
    }

    /// Xinjiang, Tibet and Inner Mongolia may not be bound.
    pub fn bindable(self) -> bool {
        self.province().bindable
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.0, self.name())
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Region::parse(&s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn example_from_domain() {
        let r = Region::parse("240_辽宁省").unwrap();
        assert_eq!(r.code(), 240);
        assert!(r.bindable());
        assert_eq!(r.to_string(), "240_辽宁省");
        assert_eq!(Region::parse("240").unwrap(), r);
    }

    #[test]
    fn forbidden_provinces() {
        for code in ["471", "891", "991"] {
            assert!(!Region::parse(code).unwrap().bindable(), "{code}");
        }
        let bindable = PROVINCES.iter().filter(|p| p.bindable).count();
        assert_eq!(PROVINCES.len(), 31);
        assert_eq!(bindable, 28);
    }

    #[test]
    fn errors() {
        assert_eq!(Region::parse("999"), Err(RegionError::Unknown(999)));
        assert!(matches!(
            Region::parse("240_吉林省"),
            Err(RegionError::NameMismatch(240, _))
        ));
        assert!(matches!(
            Region::parse("liaoning"),
            Err(RegionError::Format(_))
        ));
        assert!(matches!(Region::parse(""), Err(RegionError::Format(_))));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = Region::parse(&s);
        }

        #[test]
        fn every_province_round_trips(i in 0usize..31) {
            let p = PROVINCES[i];
            let r = Region::parse(&format!("{}_{}", p.code, p.name)).unwrap();
            prop_assert_eq!(Region::parse(&r.to_string()).unwrap(), r);
        }
    }
}

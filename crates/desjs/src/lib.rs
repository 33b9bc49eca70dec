//! # gsl-desjs: the "des.js" `strEnc` that China Telecom's legacy DCP API signs with
//!
//! DCP (`/m2m_ec/query.do`) does not take a password or an HMAC: it takes
//! `passWord = strEnc(password, key1, key2, key3)` and
//! `sign = strEnc(values sorted and joined with ",", key1, key2, key3)`, where
//! the three keys are the thirds of the account's 9-character secret
//! (`../shared/carriers/ct.md`, "DCP transport and signing").
//!
//! `strEnc` is not a library DES: it is the widely copied "des.js" (and its
//! Java port `DesUtils`). Text is cut into blocks of 4 UTF-16 code units
//! (64 bits, each unit big-endian, the last block zero-padded); keys are cut
//! the same way; every text block is encrypted with a DES-like round function
//! under every key block of key1, then of key2, then of key3; each block is
//! written as 16 upper-case hex digits. Its key schedule takes the key bits in
//! des.js's own order, so a FIPS DES gives different output.
//!
//! Both the adapter (to sign) and the simulator (to check) call this one
//! cipher: it is a primitive, not a request builder. Its correctness rests on
//! the vector in `ct.md`, a literal in the tests below, not on the two sides
//! agreeing.
//!
//! ## Layout
//!
//! One file: [`str_enc`] and [`dcp_keys`]; the permutation tables are private.
#![forbid(unsafe_code)]

type Block = [u8; 64];

/// The three keys of a DCP secret: `[0:3]`, `[3:6]`, `[6:9]` (by character).
pub fn dcp_keys(secret: &str) -> (String, String, String) {
    let c: Vec<char> = secret.chars().collect();
    let part = |a: usize, b: usize| c[a.min(c.len())..b.min(c.len())].iter().collect();
    (part(0, 3), part(3, 6), part(6, 9))
}

/// des.js `strEnc(data, k1, k2, k3)`: upper-case hex, 16 digits per 4
/// UTF-16 units of `data`. Empty keys are skipped, as des.js does.
pub fn str_enc(data: &str, k1: &str, k2: &str, k3: &str) -> String {
    let schedules: Vec<[[u8; 48]; 16]> = [k1, k2, k3]
        .iter()
        .flat_map(|k| blocks(k))
        .map(|kb| schedule(&kb))
        .collect();
    let mut out = String::new();
    for block in blocks(data) {
        let mut b = block;
        for s in &schedules {
            b = encrypt(&b, s);
        }
        out.push_str(&to_hex(&b));
    }
    out
}

/// Cut text into 64-bit blocks of 4 UTF-16 units (zero-padded).
fn blocks(s: &str) -> Vec<Block> {
    let units: Vec<u16> = s.encode_utf16().collect();
    units
        .chunks(4)
        .map(|chunk| {
            let mut b = [0u8; 64];
            for (i, u) in chunk.iter().enumerate() {
                for j in 0..16 {
                    b[16 * i + j] = ((u >> (15 - j)) & 1) as u8;
                }
            }
            b
        })
        .collect()
}

fn to_hex(b: &Block) -> String {
    b.chunks(4)
        .map(|n| {
            let v = n.iter().fold(0u8, |a, bit| (a << 1) | bit);
            char::from_digit(v as u32, 16)
                .expect("a nibble is one hex digit")
                .to_ascii_uppercase()
        })
        .collect()
}

const ROTATIONS: [usize; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

const PC2: [usize; 48] = [
    13, 16, 10, 23, 0, 4, 2, 27, 14, 5, 20, 9, 22, 18, 11, 3, 25, 7, 15, 6, 26, 19, 12, 1, 40, 51,
    30, 36, 46, 54, 29, 39, 50, 44, 32, 47, 43, 48, 38, 55, 33, 52, 45, 41, 49, 35, 28, 31,
];

/// des.js's key schedule: 16 sub-keys of 48 bits.
fn schedule(key: &Block) -> [[u8; 48]; 16] {
    let mut k = [0u8; 56];
    for i in 0..7 {
        for t in 0..8 {
            k[i * 8 + t] = key[8 * (7 - t) + i];
        }
    }
    let mut out = [[0u8; 48]; 16];
    for (round, sub) in out.iter_mut().enumerate() {
        for _ in 0..ROTATIONS[round] {
            k[..28].rotate_left(1);
            k[28..].rotate_left(1);
        }
        for (m, idx) in PC2.iter().enumerate() {
            sub[m] = k[*idx];
        }
    }
    out
}

fn initial_permutation(d: &Block) -> Block {
    let mut ip = [0u8; 64];
    for i in 0..4 {
        let (m, n) = (2 * i + 1, 2 * i);
        for k in 0..8 {
            let j = 7 - k;
            ip[i * 8 + k] = d[j * 8 + m];
            ip[i * 8 + k + 32] = d[j * 8 + n];
        }
    }
    ip
}

fn expand(r: &[u8; 32]) -> [u8; 48] {
    let mut e = [0u8; 48];
    for i in 0..8 {
        e[i * 6] = if i == 0 { r[31] } else { r[i * 4 - 1] };
        e[i * 6 + 1..i * 6 + 5].copy_from_slice(&r[i * 4..i * 4 + 4]);
        e[i * 6 + 5] = if i == 7 { r[0] } else { r[i * 4 + 4] };
    }
    e
}

const SBOX: [[[u8; 16]; 4]; 8] = [
    [
        [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7],
        [0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8],
        [4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0],
        [15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    ],
    [
        [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10],
        [3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5],
        [0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15],
        [13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    ],
    [
        [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8],
        [13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1],
        [13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7],
        [1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    ],
    [
        [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15],
        [13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9],
        [10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4],
        [3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    ],
    [
        [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9],
        [14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6],
        [4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14],
        [11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    ],
    [
        [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11],
        [10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8],
        [9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6],
        [4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    ],
    [
        [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1],
        [13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6],
        [1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2],
        [6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    ],
    [
        [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7],
        [1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2],
        [7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8],
        [2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
    ],
];

fn substitute(e: &[u8; 48]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for m in 0..8 {
        let b = &e[m * 6..m * 6 + 6];
        let row = (b[0] * 2 + b[5]) as usize;
        let col = (b[1] * 8 + b[2] * 4 + b[3] * 2 + b[4]) as usize;
        let v = SBOX[m][row][col];
        for bit in 0..4 {
            out[m * 4 + bit] = (v >> (3 - bit)) & 1;
        }
    }
    out
}

const P: [usize; 32] = [
    15, 6, 19, 20, 28, 11, 27, 16, 0, 14, 22, 25, 4, 17, 30, 9, 1, 7, 23, 13, 31, 26, 2, 8, 18, 12,
    29, 5, 21, 10, 3, 24,
];

const FP: [usize; 64] = [
    39, 7, 47, 15, 55, 23, 63, 31, 38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
    36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27, 34, 2, 42, 10, 50, 18, 58, 26,
    33, 1, 41, 9, 49, 17, 57, 25, 32, 0, 40, 8, 48, 16, 56, 24,
];

fn encrypt(data: &Block, keys: &[[u8; 48]; 16]) -> Block {
    let ip = initial_permutation(data);
    let mut l: [u8; 32] = ip[..32].try_into().expect("32 bits");
    let mut r: [u8; 32] = ip[32..].try_into().expect("32 bits");
    for key in keys {
        let prev_l = l;
        l = r;
        let mut e = expand(&r);
        for (x, k) in e.iter_mut().zip(key) {
            *x ^= k;
        }
        let s = substitute(&e);
        for i in 0..32 {
            r[i] = s[P[i]] ^ prev_l[i];
        }
    }
    let mut joined = [0u8; 64];
    joined[..32].copy_from_slice(&r);
    joined[32..].copy_from_slice(&l);
    let mut out = [0u8; 64];
    for (i, idx) in FP.iter().enumerate() {
        out[i] = joined[*idx];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ct.md`: secret `k9X2m7Q4p` -> keys `k9X`, `2m7`, `Q4p`;
    /// `strEnc("Passw0rd")` = `3D057CC80D614CFD30E7AC02CD78E8EE`.
    #[test]
    fn the_vector_of_ct_md() {
        let (a, b, c) = dcp_keys("k9X2m7Q4p");
        assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("k9X", "2m7", "Q4p"));
        assert_eq!(
            str_enc("Passw0rd", &a, &b, &c),
            "3D057CC80D614CFD30E7AC02CD78E8EE"
        );
    }

    #[test]
    fn sixteen_hex_digits_per_four_characters() {
        let (a, b, c) = dcp_keys("k9X2m7Q4p");
        assert_eq!(str_enc("", &a, &b, &c), "");
        assert_eq!(str_enc("abc", &a, &b, &c).len(), 16);
        assert_eq!(str_enc("abcde", &a, &b, &c).len(), 32);
        assert_ne!(str_enc("abcd", &a, &b, &c), str_enc("abce", &a, &b, &c));
    }
}

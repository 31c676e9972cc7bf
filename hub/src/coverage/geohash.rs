//! Geohash cells (Niemeyer's base-32 interleaving of longitude and
//! latitude bits): the places spatial coverage counts.

/// Characters of the cells spatial coverage counts: about 1.2 km × 0.6 km.
pub const CELL_CHARS: usize = 6;

const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// The geohash of `chars` characters holding (`lat`, `lon`); `None` for a
/// position off the globe or not a number.
pub fn encode(lat: f64, lon: f64, chars: usize) -> Option<String> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return None;
    }
    let (mut lat_lo, mut lat_hi) = (-90.0_f64, 90.0_f64);
    let (mut lon_lo, mut lon_hi) = (-180.0_f64, 180.0_f64);
    let mut out = String::with_capacity(chars);
    let mut even = true; // bits alternate, longitude first
    let (mut bits, mut n) = (0usize, 0);
    while out.len() < chars {
        let (lo, hi, v) = if even {
            (&mut lon_lo, &mut lon_hi, lon)
        } else {
            (&mut lat_lo, &mut lat_hi, lat)
        };
        let mid = (*lo + *hi) / 2.0;
        bits <<= 1;
        if v >= mid {
            bits |= 1;
            *lo = mid;
        } else {
            *hi = mid;
        }
        even = !even;
        n += 1;
        if n == 5 {
            out.push(char::from(BASE32[bits]));
            bits = 0;
            n = 0;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_cells() {
        // The example of the geohash's own description (Jutland, Denmark).
        assert_eq!(
            encode(57.64911, 10.40744, 11).as_deref(),
            Some("u4pruydqqvj")
        );
        // Chaotianmen, Yuzhong district, Chongqing: in the city's cell wm7b.
        assert_eq!(encode(29.5647, 106.5862, 6).as_deref(), Some("wm7b1q"));
        assert_eq!(encode(0.0, 0.0, 1).as_deref(), Some("s"));
        assert_eq!(encode(-90.0, -180.0, 2).as_deref(), Some("00"));
    }

    #[test]
    fn off_the_globe_has_no_cell() {
        assert_eq!(encode(91.0, 0.0, 6), None);
        assert_eq!(encode(f64::NAN, 0.0, 6), None);
        assert_eq!(encode(0.0, 180.5, 6), None);
    }
}

;; Elementwise kernels for the wasm backend, on its own heap (the memory is imported from tfjs-backend-wasm's
;; instance). Arguments are byte offsets into that heap and element counts; counts are multiples of 4 (the
;; caller does the last 1–3 elements). Built into kernels_wasm.ts by scripts/build_wasm.sh (wat2wasm, Debian's
;; `wabt`); lib/simd/mod.ts explains each kernel.
(module
  (import "env" "memory" (memory 1))

  ;; Φ(x) = ½(1 + erf(x/√2)) with erf(a) ≈ 1 − p(a)^−16, p(a) = 1 + c₁a + … + c₆a⁶ for a ≥ 0
  ;; (Abramowitz & Stegun 7.1.28, |error| < 3e-7). For x < 0, Φ = ½·p^−16 directly (no cancellation).
  (func $cdf (param $v v128) (result v128)
    (local $a v128) (local $p v128) (local $half_tail v128)
    (local.set $a (f32x4.mul (f32x4.abs (local.get $v)) (f32x4.splat (f32.const 0.70710678118654752))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.0002765672))
                             (f32x4.mul (local.get $a) (f32x4.splat (f32.const 0.0000430638)))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.0001520143)) (f32x4.mul (local.get $a) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.0092705272)) (f32x4.mul (local.get $a) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.0422820123)) (f32x4.mul (local.get $a) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.0705230784)) (f32x4.mul (local.get $a) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (local.get $a) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $p) (local.get $p)))
    (local.set $p (f32x4.mul (local.get $p) (local.get $p)))
    (local.set $p (f32x4.mul (local.get $p) (local.get $p)))
    (local.set $half_tail (f32x4.div (f32x4.splat (f32.const 0.5)) (f32x4.mul (local.get $p) (local.get $p))))
    (v128.bitselect
      (local.get $half_tail)
      (f32x4.sub (f32x4.splat (f32.const 1)) (local.get $half_tail))
      (f32x4.lt (local.get $v) (f32x4.splat (f32.const 0)))))

  ;; e^t for t ≤ 0 (t below −87 is taken as −87: e^−87 ≈ 1.6e-38): t = n·ln2 + r, |r| ≤ ln2/2, e^r by its
  ;; Taylor polynomial to r⁶ (relative error < 2e-7), 2^n by building the float's exponent bits.
  (func $exp_neg (param $t v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $t (f32x4.max (local.get $t) (f32x4.splat (f32.const -87))))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $t) (f32x4.splat (f32.const 1.4426950408889634)))))
    (local.set $r (f32x4.sub (local.get $t) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 0.693145751953125)))))
    (local.set $r (f32x4.sub (local.get $r) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 1.428606765330187e-6)))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.008333333333333333))
                             (f32x4.mul (local.get $r) (f32x4.splat (f32.const 0.001388888888888889)))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.041666666666666664)) (f32x4.mul (local.get $r) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.16666666666666666)) (f32x4.mul (local.get $r) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 0.5)) (f32x4.mul (local.get $r) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (local.get $r) (local.get $p))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (local.get $r) (local.get $p))))
    (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (i32x4.splat (i32.const 127))) (i32.const 23))))

  ;; y = x·Φ(x) and Φ(x) (kept for the backward pass), n elements.
  (func (export "gelu_fwd") (param $x i32) (param $y i32) (param $cdf i32) (param $n i32)
    (local $i i32) (local $end i32) (local $v v128) (local $c v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
        (local.set $c (call $cdf (local.get $v)))
        (v128.store (i32.add (local.get $cdf) (local.get $i)) (local.get $c))
        (v128.store (i32.add (local.get $y) (local.get $i)) (f32x4.mul (local.get $v) (local.get $c)))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; dx = dy·(Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π), n elements.
  (func (export "gelu_bwd") (param $x i32) (param $cdf i32) (param $dy i32) (param $dx i32) (param $n i32)
    (local $i i32) (local $end i32) (local $v v128) (local $pdf v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
        (local.set $pdf (f32x4.mul (call $exp_neg (f32x4.mul (f32x4.mul (local.get $v) (local.get $v))
                                                              (f32x4.splat (f32.const -0.5))))
                                   (f32x4.splat (f32.const 0.3989422804014327))))
        (v128.store (i32.add (local.get $dx) (local.get $i))
          (f32x4.mul (v128.load (i32.add (local.get $dy) (local.get $i)))
                     (f32x4.add (v128.load (i32.add (local.get $cdf) (local.get $i)))
                                (f32x4.mul (local.get $v) (local.get $pdf)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  (func $hsum (param $v v128) (result f32)
    (f32.add (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
             (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; LayerNorm over rows of d floats (d a multiple of 4): x̂ = (x − mean)·(1/σ), y = x̂·w + b, 1/σ per row;
  ;; biased variance by a second pass over the row.
  (func (export "layernorm_fwd") (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $xhat i32)
        (param $rstd i32) (param $rows i32) (param $d i32) (param $eps f32)
    (local $r i32) (local $j i32) (local $row i32) (local $bytes i32) (local $acc v128) (local $t v128)
    (local $mean v128) (local $inv f32)
    (local.set $bytes (i32.shl (local.get $d) (i32.const 2)))
    (block $rows_done
      (loop $next_row
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.mul (local.get $r) (local.get $bytes)))
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $d1 (loop $l1
          (br_if $d1 (i32.ge_u (local.get $j) (local.get $bytes)))
          (local.set $acc (f32x4.add (local.get $acc)
            (v128.load (i32.add (local.get $x) (i32.add (local.get $row) (local.get $j))))))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $l1)))
        (local.set $mean (f32x4.splat (f32.div (call $hsum (local.get $acc)) (f32.convert_i32_u (local.get $d)))))
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $d2 (loop $l2
          (br_if $d2 (i32.ge_u (local.get $j) (local.get $bytes)))
          (local.set $t (f32x4.sub (v128.load (i32.add (local.get $x) (i32.add (local.get $row) (local.get $j))))
                                   (local.get $mean)))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $t) (local.get $t))))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $l2)))
        (local.set $inv (f32.div (f32.const 1)
          (f32.sqrt (f32.add (f32.div (call $hsum (local.get $acc)) (f32.convert_i32_u (local.get $d)))
                             (local.get $eps)))))
        (f32.store (i32.add (local.get $rstd) (i32.shl (local.get $r) (i32.const 2))) (local.get $inv))
        (local.set $j (i32.const 0))
        (block $d3 (loop $l3
          (br_if $d3 (i32.ge_u (local.get $j) (local.get $bytes)))
          (local.set $t (f32x4.mul
            (f32x4.sub (v128.load (i32.add (local.get $x) (i32.add (local.get $row) (local.get $j)))) (local.get $mean))
            (f32x4.splat (local.get $inv))))
          (v128.store (i32.add (local.get $xhat) (i32.add (local.get $row) (local.get $j))) (local.get $t))
          (v128.store (i32.add (local.get $y) (i32.add (local.get $row) (local.get $j)))
            (f32x4.add (f32x4.mul (local.get $t) (v128.load (i32.add (local.get $w) (local.get $j))))
                       (v128.load (i32.add (local.get $b) (local.get $j)))))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $l3)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $next_row))))

  ;; LayerNorm backward (d a multiple of 4): dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·w; dw = Σ dy·x̂ and
  ;; db = Σ dy over the rows (accumulated in the outputs, which start at zero).
  (func (export "layernorm_bwd") (param $dy i32) (param $xhat i32) (param $rstd i32) (param $w i32) (param $dx i32)
        (param $dw i32) (param $db i32) (param $rows i32) (param $d i32)
    (local $r i32) (local $j i32) (local $row i32) (local $bytes i32) (local $g v128) (local $h v128)
    (local $gw v128) (local $a1 v128) (local $a2 v128) (local $m1 v128) (local $m2 v128) (local $inv v128)
    (local $dinv f32)
    (local.set $bytes (i32.shl (local.get $d) (i32.const 2)))
    (local.set $dinv (f32.div (f32.const 1) (f32.convert_i32_u (local.get $d))))
    (block $z (loop $lz
      (br_if $z (i32.ge_u (local.get $j) (local.get $bytes)))
      (v128.store (i32.add (local.get $dw) (local.get $j)) (v128.const f32x4 0 0 0 0))
      (v128.store (i32.add (local.get $db) (local.get $j)) (v128.const f32x4 0 0 0 0))
      (local.set $j (i32.add (local.get $j) (i32.const 16)))
      (br $lz)))
    (block $rows_done
      (loop $next_row
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.mul (local.get $r) (local.get $bytes)))
        (local.set $a1 (v128.const f32x4 0 0 0 0))
        (local.set $a2 (v128.const f32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $d1 (loop $l1
          (br_if $d1 (i32.ge_u (local.get $j) (local.get $bytes)))
          (local.set $g (v128.load (i32.add (local.get $dy) (i32.add (local.get $row) (local.get $j)))))
          (local.set $h (v128.load (i32.add (local.get $xhat) (i32.add (local.get $row) (local.get $j)))))
          (local.set $gw (f32x4.mul (local.get $g) (v128.load (i32.add (local.get $w) (local.get $j)))))
          (local.set $a1 (f32x4.add (local.get $a1) (local.get $gw)))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $gw) (local.get $h))))
          (v128.store (i32.add (local.get $dw) (local.get $j))
            (f32x4.add (v128.load (i32.add (local.get $dw) (local.get $j))) (f32x4.mul (local.get $g) (local.get $h))))
          (v128.store (i32.add (local.get $db) (local.get $j))
            (f32x4.add (v128.load (i32.add (local.get $db) (local.get $j))) (local.get $g)))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $l1)))
        (local.set $m1 (f32x4.splat (f32.mul (call $hsum (local.get $a1)) (local.get $dinv))))
        (local.set $m2 (f32x4.splat (f32.mul (call $hsum (local.get $a2)) (local.get $dinv))))
        (local.set $inv (f32x4.splat (f32.load (i32.add (local.get $rstd) (i32.shl (local.get $r) (i32.const 2))))))
        (local.set $j (i32.const 0))
        (block $d2 (loop $l2
          (br_if $d2 (i32.ge_u (local.get $j) (local.get $bytes)))
          (local.set $gw (f32x4.mul (v128.load (i32.add (local.get $dy) (i32.add (local.get $row) (local.get $j))))
                                    (v128.load (i32.add (local.get $w) (local.get $j)))))
          (local.set $h (v128.load (i32.add (local.get $xhat) (i32.add (local.get $row) (local.get $j)))))
          (v128.store (i32.add (local.get $dx) (i32.add (local.get $row) (local.get $j)))
            (f32x4.mul (local.get $inv)
              (f32x4.sub (f32x4.sub (local.get $gw) (local.get $m1)) (f32x4.mul (local.get $h) (local.get $m2)))))
          (local.set $j (i32.add (local.get $j) (i32.const 16)))
          (br $l2)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $next_row))))
)

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
)

/* bench/cpu_gemm_probe.c: a throwaway measurement, not part of the build. Is a hand-written
 * AVX-512 sgemm with the weights packed ONCE (as an encoder could do at load) worth it on the
 * CPU backend? C(M,N) = A(M,K) W(N,K)^T, 1 thread, a 12 x 32 micro-kernel (24 zmm
 * accumulators), KC x MC blocking, against OpenBLAS's cblas_sgemm in the same loop (best of 5
 * each). Shapes: ViT-L's fc1/fc2-like GEMMs at batch 1, 8 and 64.
 *   gcc -O3 -march=native bench/cpu_gemm_probe.c -o /tmp/probe -lopenblas -lm
 *   /tmp/probe [KC [MC]]        (default 256 192)
 * Results and reading: bench/RESULTS.md, "CPU runs" (2026-11-27). Needs AVX-512F. */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#define MR 12
#define NR 32
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void pack_w(const float *W, int N, int K, float *Wp){
  for(int p=0;p<N/NR;p++) for(int k=0;k<K;k++) for(int j=0;j<NR;j++) Wp[((size_t)p*K+k)*NR+j]=W[(size_t)(p*NR+j)*K+k];
}
static void pack_a(const float *A, int M, int K, int k0, int kc, float *Ap){
  for(int s=0;s<(M+MR-1)/MR;s++) for(int k=0;k<kc;k++) for(int i=0;i<MR;i++){int r=s*MR+i; Ap[((size_t)s*kc+k)*MR+i]= r<M? A[(size_t)r*K+k0+k]:0.f;}
}
static inline void kernel(int kc, const float *a, const float *b, float *c, int ldc, int rows, int first){
  __m512 c0[MR], c1[MR];
  for(int i=0;i<MR;i++){c0[i]=_mm512_setzero_ps(); c1[i]=_mm512_setzero_ps();}
  for(int k=0;k<kc;k++){
    __m512 b0=_mm512_loadu_ps(b+k*NR), b1=_mm512_loadu_ps(b+k*NR+16);
    _mm_prefetch((const char*)(b+(k+8)*NR),_MM_HINT_T0);
    #pragma GCC unroll 12
    for(int i=0;i<MR;i++){ __m512 av=_mm512_set1_ps(a[k*MR+i]); c0[i]=_mm512_fmadd_ps(av,b0,c0[i]); c1[i]=_mm512_fmadd_ps(av,b1,c1[i]); }
  }
  for(int i=0;i<rows;i++){
    float *cr=c+(size_t)i*ldc;
    if(first){_mm512_storeu_ps(cr,c0[i]);_mm512_storeu_ps(cr+16,c1[i]);}
    else {_mm512_storeu_ps(cr,_mm512_add_ps(_mm512_loadu_ps(cr),c0[i]));_mm512_storeu_ps(cr+16,_mm512_add_ps(_mm512_loadu_ps(cr+16),c1[i]));}
  }
}
static int MC=192;
static void gemm(const float *A,int M,int N,int K,const float *Wp,float *C,float *Ap,int KC){
  for(int k0=0;k0<K;k0+=KC){int kc=K-k0<KC?K-k0:KC;
    for(int m0=0;m0<M;m0+=MC){int mc=M-m0<MC?M-m0:MC;
      pack_a(A+(size_t)m0*K,mc,K,k0,kc,Ap);
      for(int p=0;p<N/NR;p++){ const float *b=Wp+((size_t)p*K+k0)*NR;
        for(int s=0;s<(mc+MR-1)/MR;s++){ int rows=mc-s*MR<MR?mc-s*MR:MR;
          kernel(kc,Ap+(size_t)s*kc*MR,b,C+(size_t)(m0+s*MR)*N+p*NR,N,rows,k0==0);}}}
  }
}
int main(int argc,char**argv){
  openblas_set_num_threads(1);
  int KC=argc>1?atoi(argv[1]):256; if(argc>2) MC=atoi(argv[2]);
  int shapes[][3]={{77,2304,768},{77,768,3072},{616,3072,768},{616,768,3072},{4928,768,3072}};
  for(int si=0;si<5;si++){int M=shapes[si][0],N=shapes[si][1],K=shapes[si][2];
    float *A=aligned_alloc(64,4L*M*K),*W=aligned_alloc(64,4L*N*K),*Wp=aligned_alloc(64,4L*N*K),*C=aligned_alloc(64,4L*M*N),*C2=aligned_alloc(64,4L*M*N),*Ap=aligned_alloc(64,4L*(M+MR)*KC);
    for(long i=0;i<(long)M*K;i++)A[i]=((i*7)%13)*0.1f-0.6f; for(long i=0;i<(long)N*K;i++)W[i]=((i*5)%11)*0.1f-0.5f;
    pack_w(W,N,K,Wp);
    double best=1e9,bb=1e9;
    for(int r=0;r<5;r++){double t=now();gemm(A,M,N,K,Wp,C,Ap,KC);t=now()-t;if(t<best)best=t;
      t=now();cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1.f,A,K,W,K,0.f,C2,N);t=now()-t;if(t<bb)bb=t;}
    double md=0; for(long i=0;i<(long)M*N;i++){double d=fabs(C[i]-C2[i]); if(d>md)md=d;}
    printf("%5dx%5dx%5d KC %d: packed %.1f GFLOP/s, openblas %.1f GFLOP/s (max diff %.2g)\n",M,N,K,KC,2.0*M*N*K/best*1e-9,2.0*M*N*K/bb*1e-9,md);
    free(A);free(W);free(Wp);free(C);free(C2);free(Ap);}
}

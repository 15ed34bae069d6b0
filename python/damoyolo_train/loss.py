"""Training losses in the spirit of ZeroHead: quality focal loss (IoU-aware class targets), distribution focal
loss and GIoU, with a simplified dynamic-k (OTA-like) assigner. Written for this project; the official
AlignOTA assigner is approximated, not reproduced."""
import torch
import torch.nn.functional as F

from .head import make_priors


def box_iou(a, b, eps=1e-7):
    """Pairwise IoU [len(a), len(b)] for xyxy boxes."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter + eps)


def giou_loss(pred, target, eps=1e-7):
    """Element-wise 1 - GIoU for matched xyxy boxes."""
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    ap = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(-1)
    at = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(-1)
    union = ap + at - inter + eps
    iou = inter / union
    elt = torch.min(pred[:, :2], target[:, :2])
    erb = torch.max(pred[:, 2:], target[:, 2:])
    enclose = (erb - elt).clamp(min=0).prod(-1) + eps
    return 1 - (iou - (enclose - union) / enclose), iou


def quality_focal_loss(logits, target, beta=2.0):
    """BCE against a soft (IoU) target, modulated by |sigmoid - target|^beta (GFL's QFL)."""
    p = logits.sigmoid()
    return F.binary_cross_entropy_with_logits(logits, target, reduction='none') * (p - target).abs().pow(beta)


def distribution_focal_loss(logits, target):
    """logits [M, R+1]; target [M] in [0, R): cross-entropy on the two bins around the target, weighted by
    proximity, so the expectation of the distribution is pulled to the target value."""
    left = target.floor().long()
    right = left + 1
    wl = right.float() - target
    wr = target - left.float()
    return F.cross_entropy(logits, left, reduction='none') * wl + F.cross_entropy(logits, right, reduction='none') * wr


@torch.no_grad()
def assign(pts, strides, pred_boxes, pred_scores, gt_boxes, gt_labels, reg_max, center_radius=2.5, topq=10):
    """Dynamic-k assignment for one image.

    Candidates are anchor points inside the GT box or within center_radius strides of its centre. Cost =
    QFL-style class cost against the IoU + 3 * (-log IoU) + penalties for points outside the box+centre
    area or whose stride cannot represent the box with R bins. Each GT takes its k cheapest anchors, with
    k = sum of its top-10 IoUs (>= 1); an anchor claimed twice goes to the cheaper GT.
    Returns (fg mask [A], matched gt index [A])."""
    A = pts.shape[0]
    G = gt_boxes.shape[0]
    fg = torch.zeros(A, dtype=torch.bool)
    match = torch.zeros(A, dtype=torch.long)
    if G == 0:
        return fg, match
    px, py = pts[:, 0][None], pts[:, 1][None]
    x1, y1, x2, y2 = [gt_boxes[:, i:i + 1] for i in range(4)]
    in_box = (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = center_radius * strides[None]
    in_ctr = ((px - cx).abs() < r) & ((py - cy).abs() < r)
    cand = (in_box | in_ctr).any(0)
    ci = cand.nonzero().squeeze(1)
    if ci.numel() == 0:
        return fg, match
    ious = box_iou(gt_boxes, pred_boxes[ci])                           # [G, Ac]
    p = pred_scores[ci][:, gt_labels].t()                              # [G, Ac]
    cls_cost = F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), ious, reduction='none') * (p - ious).abs().pow(2)
    ltrb = torch.stack([px - x1, py - y1, x2 - px, y2 - py], -1)[:, ci] / strides[ci][None, :, None]
    unrepresentable = ltrb.max(-1).values > reg_max
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8)
    cost = cost + 1e5 * (~(in_box[:, ci] & in_ctr[:, ci])).float() + 1e3 * unrepresentable.float()
    k = ious.topk(min(topq, ious.shape[1]), dim=1).values.sum(1).int().clamp(min=1)
    sel = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(G):
        idx = cost[g].topk(min(int(k[g]), cost.shape[1]), largest=False).indices
        sel[g, idx] = True
    multi = sel.sum(0) > 1
    if multi.any():
        best = cost[:, multi].argmin(0)
        sel[:, multi] = False
        sel[best, multi.nonzero().squeeze(1)] = True
    has = sel.any(0)
    fg[ci[has]] = True
    match[ci[has]] = sel[:, has].float().argmax(0)
    return fg, match


class DetectionLoss:
    def __init__(self, num_classes, reg_max, img_size, strides=(8, 16, 32), w_qfl=1.0, w_giou=2.0, w_dfl=0.25):
        self.nc, self.R = num_classes, reg_max
        self.pts, self.strides = make_priors(img_size, strides)
        self.proj = torch.arange(reg_max + 1, dtype=torch.float32)
        self.w = (w_qfl, w_giou, w_dfl)

    def decode(self, reg):
        """reg [N,A,4,R+1] logits -> xyxy boxes [N,A,4] (same formulas as the exported graph)."""
        d = reg.softmax(-1).matmul(self.proj) * self.strides[None, :, None]
        p = self.pts[None]
        return torch.cat([p - d[..., :2], p + d[..., 2:]], -1)

    def flatten(self, cls_out, reg_out):
        n = cls_out[0].shape[0]
        cls = torch.cat([c.flatten(2).transpose(1, 2) for c in cls_out], 1)
        reg = torch.cat([r.flatten(2).transpose(1, 2) for r in reg_out], 1).reshape(n, -1, 4, self.R + 1)
        return cls, reg

    def __call__(self, cls_out, reg_out, targets):
        """targets: list (per image) of (boxes xyxy [G,4] in input pixels, labels [G] 0-based)."""
        cls, reg = self.flatten(cls_out, reg_out)
        boxes = self.decode(reg)
        N, A, C = cls.shape
        scores = cls.detach().sigmoid()
        qfl_target = torch.zeros_like(cls)
        pos_img, pos_idx, pos_gt, pos_lbl = [], [], [], []
        for b, (gtb, gtl) in enumerate(targets):
            fg, match = assign(self.pts, self.strides, boxes[b].detach(), scores[b], gtb, gtl, self.R)
            idx = fg.nonzero().squeeze(1)
            pos_img.append(torch.full_like(idx, b))
            pos_idx.append(idx)
            pos_gt.append(gtb[match[idx]])
            pos_lbl.append(gtl[match[idx]])
        pos_img, pos_idx, tgt, lbl = torch.cat(pos_img), torch.cat(pos_idx), torch.cat(pos_gt), torch.cat(pos_lbl)
        num_pos = max(1, pos_idx.numel())
        if pos_idx.numel():
            pb = boxes[pos_img, pos_idx]
            lg, iou = giou_loss(pb, tgt)
            # IoU-aware class target: the score learns to predict localisation quality (no objectness).
            qfl_target[pos_img, pos_idx, lbl] = iou.detach().clamp(min=0)
            # GFL weighting: localisation of confidently classified anchors matters most.
            weight = scores[pos_img, pos_idx].max(-1).values
            wsum = weight.sum().clamp(min=1e-6)
            st = self.strides[pos_idx][:, None]
            p = self.pts[pos_idx]
            ltrb = torch.cat([p - tgt[:, :2], tgt[:, 2:] - p], -1) / st
            ltrb = ltrb.clamp(0, self.R - 0.01)
            dfl = distribution_focal_loss(reg[pos_img, pos_idx].reshape(-1, self.R + 1), ltrb.reshape(-1))
            loss_giou = (lg * weight).sum() / wsum
            loss_dfl = (dfl.reshape(-1, 4).mean(1) * weight).sum() / wsum
        else:
            loss_giou = loss_dfl = cls.sum() * 0
        loss_qfl = quality_focal_loss(cls, qfl_target).sum() / num_pos
        total = self.w[0] * loss_qfl + self.w[1] * loss_giou + self.w[2] * loss_dfl
        return total, {'qfl': loss_qfl.item(), 'giou': loss_giou.item(), 'dfl': loss_dfl.item(),
                       'pos': pos_idx.numel() / max(1, N)}
